package main

import (
	"strings"
	"testing"
)

func TestParseShowCount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reply   string
		want    showCount
		wantErr bool
	}{
		{"converged", "1007-30000 of 30002 routes for 10002 networks in table master6\n0000 \n", showCount{30000, 30002, 10002}, false},
		{"empty", "1007-0 of 2 routes for 2 networks in table master6\n0000 \n", showCount{0, 2, 2}, false},
		{"table header first", "1007-Table master6:\n1007-20000 of 20002 routes for 10002 networks in table master6\n0000 \n", showCount{20000, 20002, 10002}, false},
		{"continuation line", "1007-Table master6:\n 3 of 5 routes for 3 networks in table master6\n0000 \n", showCount{3, 5, 3}, false},
		{"no count", "0000 \n", showCount{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseShowCount(strings.Split(strings.TrimSuffix(tc.reply, "\n"), "\n"))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseImported(t *testing.T) {
	up := `1002-Name       Proto      Table      State  Since         Info
1002-n_2001_db8_1__11 BGP        ---        up     2026-11-27 03:44:05.896  Established
1006-  BGP state:          Established
    Neighbor address: 2001:db8:1::11
  Channel ipv6
    State:          UP
    Routes:         10000 imported, 0 exported, 3334 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:          10000          0          0          0      10000
0000 `
	down := `1002-Name       Proto      Table      State  Since         Info
1002-n_2001_db8_1__13 BGP        ---        start  2026-11-27 03:45:05.371  Active        Socket: Connection closed
1006-  BGP state:          Active
    Neighbor address: 2001:db8:1::13
0000 `
	for _, tc := range []struct {
		name    string
		reply   string
		want    int
		wantErr bool
	}{
		{"up", up, 10000, false},
		{"down", down, 0, false},
		{"garbled", "1006-    Routes:         many imported\n0000 ", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseImported(strings.Split(tc.reply, "\n"))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}
