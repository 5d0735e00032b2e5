package main

import (
	"fmt"
	"strings"
)

// unifiedDiff returns the changes from a to b in unified format (as `diff
// -u` writes them) with three lines of context, or "" if they are equal. It
// compares lines with a longest-common-subsequence table: quadratic, which
// is fine for the configuration files doctor edits (a few hundred lines).
func unifiedDiff(aName, bName, a, b string) string {
	al, bl := diffLines(a), diffLines(b)
	n, m := len(al), len(bl)
	// lcs[i][j] is the LCS length of al[i:] and bl[j:].
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type edit struct {
		op   byte // ' ', '-', '+'
		line string
		ai   int // line index in a before this edit
		bi   int
	}
	var edits []edit
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && al[i] == bl[j]:
			edits = append(edits, edit{' ', al[i], i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			// Deletions first, as diff -u writes them.
			edits = append(edits, edit{'-', al[i], i, j})
			i++
		default:
			edits = append(edits, edit{'+', bl[j], i, j})
			j++
		}
	}

	const context = 3
	var out strings.Builder
	for k := 0; k < len(edits); {
		if edits[k].op == ' ' {
			k++
			continue
		}
		// A hunk: from context lines before this change to context lines
		// after the last change that is at most 2*context lines further.
		start := max(k-context, 0)
		end := k
		for e := k; e < len(edits); e++ {
			if edits[e].op != ' ' {
				end = e
			} else if e-end > 2*context {
				break
			}
		}
		stop := min(end+context+1, len(edits))
		var aCount, bCount int
		for _, e := range edits[start:stop] {
			if e.op != '+' {
				aCount++
			}
			if e.op != '-' {
				bCount++
			}
		}
		if out.Len() == 0 {
			fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(edits[start].ai, aCount), hunkRange(edits[start].bi, bCount))
		for _, e := range edits[start:stop] {
			out.WriteByte(e.op)
			out.WriteString(e.line)
			out.WriteByte('\n')
		}
		k = stop
	}
	return out.String()
}

// hunkRange formats a hunk's line range: 1-based start, and the count
// unless it is 1; an empty range names the line before it.
func hunkRange(start, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, count)
}

func diffLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
