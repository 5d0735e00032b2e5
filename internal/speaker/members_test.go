package speaker

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestSecretKeys(t *testing.T) {
	k16, k32 := []byte("0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")
	name := types.NamespacedName{Namespace: "ironlb-system", Name: "ironlb-memberlist"}
	cases := []struct {
		name   string
		data   map[string][]byte
		key    []byte
		accept [][]byte
		bad    string // the error, when the Secret cannot be used
	}{
		{"key alone", map[string][]byte{"secretkey": k32}, k32, nil, ""},
		{"accepted keys in name order", map[string][]byte{"secretkey": k32, "secretkey-previous": k16, "secretkey-next": k32}, k32, [][]byte{k32, k16}, ""},
		{"other data ignored", map[string][]byte{"secretkey": k16, "note": []byte("x")}, k16, nil, ""},
		{"no key", map[string][]byte{"secretkey-next": k32}, nil, nil, `has no key "secretkey"`},
		{"short key", map[string][]byte{"secretkey": []byte("short")}, nil, nil, `key "secretkey" is 5 bytes`},
		{"short accepted key", map[string][]byte{"secretkey": k32, "secretkey-next": []byte("short")}, nil, nil, `key "secretkey-next" is 5 bytes`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, accept, err := secretKeys(name, c.data)
			if c.bad != "" {
				var bad *badKeyError
				if !errors.As(err, &bad) || !strings.Contains(err.Error(), c.bad) {
					t.Fatalf("error %v, want a badKeyError containing %q", err, c.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(key, c.key) || !slices.EqualFunc(accept, c.accept, slices.Equal) {
				t.Errorf("got %q %q, want %q %q", key, accept, c.key, c.accept)
			}
		})
	}
}
