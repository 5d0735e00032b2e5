package speaker

import (
	"testing"

	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/election"
)

func TestIfacesMeta(t *testing.T) {
	in := []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "eth1", MAC: "02:00:00:00:00:02"}}
	s := encodeIfaces(in, election.MaxMeta)
	out := decodeIfaces(s)
	if len(out) != 2 || out[1] != in[1] {
		t.Fatalf("round trip %q: %v", s, out)
	}
	if s := encodeIfaces(in, 25); s != "eth0=02:00:00:00:00:01" {
		t.Fatalf("truncated to %q", s)
	}
	if out := decodeIfaces(""); len(out) != 0 || out == nil {
		t.Fatalf("empty meta gives %#v, want an empty list (a node with no interface)", out)
	}
}
