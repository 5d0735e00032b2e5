package main

import "testing"

// TestDisplayName checks that usage lines name the command as the user
// typed it: `kubectl ironlb` when run as the plugin kubectl-ironlb.
func TestDisplayName(t *testing.T) {
	for argv0, want := range map[string]string{
		"/usr/local/bin/kubectl-ironlb": "kubectl ironlb status [flags]",
		"kubectl-ironlb.exe":            "kubectl ironlb status [flags]",
		"./bin/ironlbctl":               "ironlbctl status [flags]",
	} {
		root := newRootCommand()
		setDisplayName(root, argv0)
		status, _, err := root.Find([]string{"status"})
		if err != nil {
			t.Fatal(err)
		}
		if got := status.UseLine(); got != want {
			t.Errorf("run as %s: usage %q, want %q", argv0, got, want)
		}
	}
}
