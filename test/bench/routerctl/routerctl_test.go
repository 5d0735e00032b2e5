package routerctl

import (
	"bufio"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestReadVTYReply(t *testing.T) {
	long := strings.Repeat("x", 10000) // more than bufio's buffer
	for _, tc := range []struct {
		name       string
		in         string
		want       string
		wantStatus bool // ErrVTYStatus
		wantErr    bool
	}{
		{name: "success", in: "{\n}\n\x00\x00\x00\x00next", want: "{\n}\n"},
		{name: "empty output", in: "\x00\x00\x00\x00", want: ""},
		{name: "long output", in: long + "\x00\x00\x00\x00", want: long},
		{name: "unknown command", in: "% Unknown command: show bgp nonsense\n\x00\x00\x00\x02", want: "% Unknown command: show bgp nonsense\n", wantStatus: true, wantErr: true},
		{name: "cut short", in: "{\n", want: "{\n", wantErr: true},
		{name: "no status", in: "{}\x00\x00\x00", want: "{}\x00\x00\x00", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readVTYReply(bufio.NewReader(strings.NewReader(tc.in)))
			if (err != nil) != tc.wantErr || errors.Is(err, ErrVTYStatus) != tc.wantStatus {
				t.Fatalf("error %v, want error %v (status %v)", err, tc.wantErr, tc.wantStatus)
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    int // lines in the first reply
		wantErr bool
	}{
		{"greeting", "0001 BIRD 2.0.12 ready.\n1007-next reply\n", 1, false},
		{"multi-line", "1007-Table master6:\n continued\n1007-3 of 3 routes\n0000 \n0001 next\n", 4, false},
		{"syntax error", "9001 syntax error, unexpected CF_SYM_UNDEFINED\n", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &BIRD{r: bufio.NewReader(strings.NewReader(tc.in))}
			lines, err := b.reply()
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if len(lines) != tc.want {
				t.Errorf("read %q, want %d lines", lines, tc.want)
			}
		})
	}
}

func TestBIRDProtocol(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.11":  "n_198_51_100_11",
		"2001:db8:1::11": "n_2001_db8_1__11",
	} {
		if got := BIRDProtocol(netip.MustParseAddr(in)); got != want {
			t.Errorf("BIRDProtocol(%s) = %q, want %q", in, got, want)
		}
	}
}
