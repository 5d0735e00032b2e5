package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestCompactUID(t *testing.T) {
	for _, u := range []types.UID{
		"0b6c7f2e-2f6e-4d0e-9f6e-000000000042", // what the API server makes
		"0B6C7F2E-2F6E-4D0E-9F6E-000000000042", // upper case comes back upper case
		"0b6c7f2e2f6e4d0e9f6e000000000042abcd", // 36 bytes, no dashes
		"0b6c7f2e-2f6e-4d0e-9f6e-00000000004g",
		"not-a-uuid",
		"",
	} {
		if got := compactUIDOf(u).UID(); got != u {
			t.Errorf("compactUIDOf(%q).UID() = %q", u, got)
		}
	}
}
