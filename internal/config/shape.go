package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// checkShape compares decoded JSON j with the Go type of v (a pointer to
// the legacy structs) and reports every unknown key and every value of the
// wrong type, with its path. encoding/json would stop at the first and
// name it without list indexes.
func checkShape(j []byte, v any, r *report) bool {
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		r.invalid(crdPath("data."+LegacyConfigKey), "%v", err)
		return false
	}
	n := len(r.list)
	shape(doc, reflect.TypeOf(v).Elem(), legacyPath(""), r)
	return len(r.list) == n
}

func shape(v any, t reflect.Type, at fieldPath, r *report) {
	if v == nil {
		return // null: unset
	}
	switch t.Kind() {
	case reflect.Pointer:
		shape(v, t.Elem(), at, r)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			r.invalid(at, "must be a mapping of keys to values, not %s", describe(v))
			return
		}
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[k]
			if !ok {
				r.invalid(at, "unknown key %q; %s", k, suggest(k, fields))
				continue
			}
			shape(m[k], ft, at.child(k), r)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			r.invalid(at, "must be a mapping of keys to values, not %s", describe(v))
			return
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			shape(m[k], t.Elem(), at.key(k), r)
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			r.invalid(at, "must be a list, not %s", describe(v))
			return
		}
		for i, e := range l {
			shape(e, t.Elem(), at.index(i), r)
		}
	case reflect.String:
		switch v.(type) {
		case map[string]any, []any:
			r.invalid(at, "must be a single value, not %s", describe(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			r.invalid(at, "must be true or false, not %s", describe(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		bits := t.Bits()
		if _, err := strconv.ParseInt(string(n), 10, bits); !ok || err != nil {
			lo, hi := -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1
			r.invalid(at, "must be a whole number from %d to %d, not %s", lo, hi, describe(v))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		bits := t.Bits()
		if _, err := strconv.ParseUint(string(n), 10, bits); !ok || err != nil {
			r.invalid(at, "must be a whole number from 0 to %d, not %s", uint64(1)<<bits-1, describe(v))
		}
	default:
		panic(fmt.Sprintf("config: legacy type %v has a field of kind %v that shape does not handle", t, t.Kind()))
	}
}

// jsonFields maps the JSON names of t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		m[name] = f.Type
	}
	return m
}

func describe(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return strconv.Quote(x)
	default:
		return fmt.Sprint(x)
	}
}

// suggest names the key the operator probably meant, or lists the keys.
func suggest(k string, fields map[string]reflect.Type) string {
	keys := slices.Sorted(maps.Keys(fields))
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	}
	best, bestD := "", 3
	for _, f := range keys {
		d := editDistance(norm(k), norm(f))
		if d < bestD {
			best, bestD = f, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "valid keys here are " + strings.Join(keys, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
