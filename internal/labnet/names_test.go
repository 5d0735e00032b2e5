package labnet

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNSNameRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		wantSuffix string
		wantOK     bool
	}{
		{nsName("0a1b2c", "node-1"), "0a1b2c", true},
		{nsName("0a1b2c", switchHost), "0a1b2c", true},
		{"ironlb-0a1b2c", "", false},         // no host
		{"ironlb-0a1b2c-", "", false},        // empty host
		{"ironlb-0A1B2C-node-1", "", false},  // not our hex
		{"ironlb-0a1b2-node-1", "", false},   // short suffix
		{"ironlb-0a1b2cd-node-1", "", false}, // long suffix
		{"cni-0a1b2c-node-1", "", false},     // someone else's
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			suffix, ok := parseNSName(tt.name)
			if suffix != tt.wantSuffix || ok != tt.wantOK {
				t.Errorf("parseNSName(%q) = %q, %v, want %q, %v", tt.name, suffix, ok, tt.wantSuffix, tt.wantOK)
			}
		})
	}
}

func TestNamesFitInterfaceNames(t *testing.T) {
	for _, name := range []string{"cp", "client", nodeName(MaxNodes), bridgeName, hostIfName} {
		if len(name) > maxIfNameLen {
			t.Errorf("%q is longer than %d bytes", name, maxIfNameLen)
		}
	}
}

func TestHostAddrs(t *testing.T) {
	tests := []struct {
		name   string
		num    int
		v4, v6 string
	}{
		{"cp", cpHostNum, "198.51.100.2", "2001:db8:1::2"},
		{"node-1", nodeHostNum(1), "198.51.100.11", "2001:db8:1::11"},
		{"node-89", nodeHostNum(lowNodes), "198.51.100.99", "2001:db8:1::99"},
		{"client", clientHostNum, "198.51.100.100", "2001:db8:1::100"},
		{"node-90", nodeHostNum(lowNodes + 1), "198.51.100.150", "2001:db8:1::150"},
		{"node-100", nodeHostNum(100), "198.51.100.160", "2001:db8:1::160"},
		{"node-180", nodeHostNum(MaxNodes), "198.51.100.240", "2001:db8:1::240"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v4, v6 := hostAddrs(tt.num)
			if v4.String() != tt.v4 || v6.String() != tt.v6 {
				t.Errorf("hostAddrs(%d) = %s, %s, want %s, %s", tt.num, v4, v6, tt.v4, tt.v6)
			}
			if !lanV4.Contains(v4) || !lanV6.Contains(v6) {
				t.Errorf("hostAddrs(%d) = %s, %s, outside the LAN", tt.num, v4, v6)
			}
		})
	}
}

// TestHostNumsDistinct checks that no two hosts of the largest lab share
// an address, that none is the network's or the broadcast address, and
// that the router's .1 and the free range .101-.149 stay free.
func TestHostNumsDistinct(t *testing.T) {
	seen := map[int]string{routerHostNum: "router", cpHostNum: "cp", clientHostNum: "client"}
	for i := 1; i <= MaxNodes; i++ {
		n := nodeHostNum(i)
		if other, ok := seen[n]; ok {
			t.Errorf("%s and %s are both .%d", nodeName(i), other, n)
		}
		if n < 1 || n > 254 || (n > clientHostNum && n < highNodeBase) {
			t.Errorf("%s is .%d, outside the hosts' ranges", nodeName(i), n)
		}
		seen[n] = nodeName(i)
	}
}

func TestInetChecksum(t *testing.T) {
	// An echo request (type 8, id 0x1234, seq 1) whose checksum, placed in
	// the packet, makes the whole sum to zero.
	msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'a', 'b', 'c'}
	c := inetChecksum(msg)
	msg[2], msg[3] = byte(c>>8), byte(c)
	if got := inetChecksum(msg); got != 0 {
		t.Errorf("checksum over a packet with its checksum = %#04x, want 0", got)
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	rep := func(seq int, node string, ms int) ProbeReply {
		return ProbeReply{Seq: seq, Node: node, Sent: at((seq - 1) * 10), Received: at(ms)}
	}
	tests := []struct {
		name    string
		end     time.Time
		sent    int
		replies []ProbeReply
		want    ProbeResult
	}{{
		name: "no answers: the whole probe is a gap",
		end:  at(100), sent: 10,
		want: ProbeResult{Sent: 10, LongestGap: 100 * time.Millisecond, ByNode: map[string]int{}},
	}, {
		name: "failover from node-1 to node-2",
		end:  at(100), sent: 10,
		replies: []ProbeReply{rep(1, "node-1", 1), rep(2, "node-1", 11), rep(7, "node-2", 61), rep(8, "node-2", 71), rep(9, "node-2", 81), rep(10, "node-2", 91)},
		want:    ProbeResult{Sent: 10, Received: 6, LongestGap: 50 * time.Millisecond, ByNode: map[string]int{"node-1": 2, "node-2": 4}},
	}, {
		name: "outage at the end counts",
		end:  at(100), sent: 10,
		replies: []ProbeReply{rep(1, "node-1", 1), rep(2, "node-1", 11)},
		want:    ProbeResult{Sent: 10, Received: 2, LongestGap: 89 * time.Millisecond, ByNode: map[string]int{"node-1": 2}},
	}, {
		name: "two nodes answering one probe count once",
		end:  at(20), sent: 2,
		replies: []ProbeReply{rep(1, "node-1", 1), rep(1, "node-2", 2), rep(2, "node-1", 11)},
		want:    ProbeResult{Sent: 2, Received: 2, LongestGap: 9 * time.Millisecond, ByNode: map[string]int{"node-1": 2, "node-2": 1}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(t0, tt.end, tt.sent, tt.replies)
			tt.want.Replies = tt.replies
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("summarize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOptionsZeroValue(t *testing.T) {
	var o Options
	if o.nodes() != 3 || o.stopGrace() != defaultStopGrace {
		t.Errorf("zero Options: %d nodes, grace %v; want 3, %v", o.nodes(), o.stopGrace(), defaultStopGrace)
	}
}

func TestDialRejectsNames(t *testing.T) {
	h := &Host{Name: "client"}
	if _, err := h.DialContext(t.Context(), "tcp", "example.com:80"); err == nil {
		t.Error("DialContext accepted a host name; resolving it would query DNS outside the lab")
	}
}
