package benchbin

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckFresh(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "ironlb")
	if err := CheckFresh(t.Context(), bin, root, &bytes.Buffer{}); err == nil {
		t.Error("no error for a missing binary")
	}
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		built time.Time
		warn  bool
	}{
		{"built before the sources", time.Unix(0, 0), true},
		{"built after them", time.Now().Add(time.Hour), false},
	} {
		if err := os.Chtimes(bin, tt.built, tt.built); err != nil {
			t.Fatal(err)
		}
		var diag bytes.Buffer
		if err := CheckFresh(t.Context(), bin, root, &diag); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := strings.Contains(diag.String(), "is newer than the binary"); got != tt.warn {
			t.Errorf("%s: warned %v, want %v:\n%s", tt.name, got, tt.warn, diag.String())
		}
	}
}
