package install

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// panel is the part of a Grafana panel the test reads.
type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Datasource *source `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string  `json:"expr"`
		Datasource *source `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type source struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

var (
	metricRef     = regexp.MustCompile(`\bironlb_[a-z0-9_]+`)
	metricLiteral = regexp.MustCompile(`"(ironlb_[a-z0-9_]+)"`)
)

// registeredMetrics lists the metric names that ironlb's Go code (cmd/ and
// internal/, tests aside) spells out.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(repo(t, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range metricLiteral.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// TestDashboard checks the Grafana dashboard: it parses, every panel has a
// unique id, a place and a title, queries the dashboard's data source
// variable, and asks only for metrics ironlb exports (a renamed metric
// must not leave an empty panel behind).
func TestDashboard(t *testing.T) {
	var d struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(read(t, "charts", "ironlb", "dashboards", "ironlb.json"), &d); err != nil {
		t.Fatalf("dashboards/ironlb.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
	}
	if !slices.ContainsFunc(d.Templating.List, func(v struct{ Name, Type, Query string }) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Error("no Prometheus data source variable named datasource")
	}

	registered := registeredMetrics(t)
	if len(registered) == 0 {
		t.Fatal("found no ironlb_ metric in cmd/ or internal/")
	}
	ids := map[int]string{}
	used := map[string]bool{}
	var rows []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if other, ok := ids[p.ID]; ok || p.ID == 0 {
				t.Errorf("panel %q: id %d is not unique (also %q) or missing", p.Title, p.ID, other)
			}
			ids[p.ID] = p.Title
			if p.Title == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %d: no title or no size", p.ID)
			}
			if p.Type == "row" {
				rows = append(rows, p.Title)
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				refs := metricRef.FindAllString(tg.Expr, -1)
				if len(refs) == 0 {
					t.Errorf("panel %q: query %q reads no ironlb metric", p.Title, tg.Expr)
				}
				for _, r := range refs {
					name := r
					for _, suffix := range []string{"_bucket", "_sum", "_count"} {
						if base := strings.TrimSuffix(r, suffix); base != r && registered[base] {
							name = base
						}
					}
					used[name] = true
					if !registered[name] {
						t.Errorf("panel %q: query %q reads %s, which ironlb does not export", p.Title, tg.Expr, r)
					}
				}
			}
		}
	}
	walk(d.Panels)

	for _, want := range []string{"Address pools", "Allocations", "Layer 2 announcements", "BGP sessions"} {
		if !slices.Contains(rows, want) {
			t.Errorf("no row %q; rows: %q", want, rows)
		}
	}
	for name := range registered {
		if !used[name] {
			t.Logf("%s is on no panel", name)
		}
	}
}
