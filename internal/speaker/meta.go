package speaker

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/announce"
)

// A speaker's membership metadata tells the others what they need of it
// and cannot read from the API server without putting it on the failover
// path: its reach of the API server (apicut.go), when it joined (the
// probation, announce.View.New), whether its node's data path is up
// (datapath.go), the rebalancing move it has under way (rebalance.go),
// and its interfaces with their MACs (ifaces.go). The first three are
// items "!api-lost@T" or "!api-ok@T", "!joined@T", and
// "!dp-down@T" or "!dp-ok@T" (none when the speaker does not probe its
// kube-proxy: the data path counts as up), T being when the state began
// (Unix milliseconds, by the
// speaker's clock: the nodes' clocks agree to well within a second where
// NTP runs, as Kubernetes needs anyway), so every speaker counts from
// the same moment however late it heard. They have no "=", so speakers
// that do not know them skip them (decodeIfaces); a speaker that
// publishes none (an older version) reaches the API server, joined long
// ago and forwards.
const (
	metaAPILost    = "!api-lost@"
	metaAPIOK      = "!api-ok@"
	metaJoined     = "!joined@"
	metaDataPathUp = "!dp-ok@"
	metaDataPathDn = "!dp-down@"
	metaMove       = "!mv@"
)

// memberMeta is what a speaker publishes besides its interfaces.
type memberMeta struct {
	api    apiState
	joined time.Time
	// dataPath is the zero dataPathState when the speaker does not probe
	// its node's kube-proxy.
	dataPath dataPathState
	// move is the rebalancing move the speaker has under way
	// (rebalance.go), an item "!mv@<address>@<node>"; zero IP if none.
	move announce.Move
}

// encodeMeta is a speaker's membership metadata: m, then the interfaces
// (encodeIfaces) as far as max allows.
func encodeMeta(ifaces []announce.Iface, m memberMeta, max int) string {
	api := metaAPIOK
	if m.api.lost {
		api = metaAPILost
	}
	head := api + strconv.FormatInt(m.api.since.UnixMilli(), 10)
	if !m.joined.IsZero() {
		head += "," + metaJoined + strconv.FormatInt(m.joined.UnixMilli(), 10)
	}
	if dp := m.dataPath; !dp.since.IsZero() {
		item := metaDataPathUp
		if dp.down {
			item = metaDataPathDn
		}
		head += "," + item + strconv.FormatInt(dp.since.UnixMilli(), 10)
	}
	if m.move.IP.IsValid() {
		head += "," + metaMove + m.move.IP.String() + "@" + m.move.To
	}
	rest := encodeIfaces(ifaces, max-len(head)-1)
	if rest == "" {
		return head
	}
	return head + "," + rest
}

// decodeMeta reads what encodeMeta put before the interfaces: zero values
// for what the metadata does not say.
func decodeMeta(meta string) memberMeta {
	var m memberMeta
	at := func(item, prefix string) (time.Time, bool) {
		ms, ok := strings.CutPrefix(item, prefix)
		if !ok {
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(ms, 10, 64)
		return time.UnixMilli(n), err == nil
	}
	for item := range strings.SplitSeq(meta, ",") {
		if t, ok := at(item, metaAPILost); ok {
			m.api = apiState{lost: true, since: t}
		} else if t, ok := at(item, metaAPIOK); ok {
			m.api = apiState{since: t}
		} else if t, ok := at(item, metaJoined); ok {
			m.joined = t
		} else if t, ok := at(item, metaDataPathDn); ok {
			m.dataPath = dataPathState{down: true, since: t}
		} else if t, ok := at(item, metaDataPathUp); ok {
			m.dataPath = dataPathState{since: t}
		} else if mv, ok := strings.CutPrefix(item, metaMove); ok {
			ip, to, _ := strings.Cut(mv, "@")
			if a, err := netip.ParseAddr(ip); err == nil && to != "" {
				m.move = announce.Move{IP: a, To: to}
			}
		}
	}
	return m
}

// probation is how long after joining a member is new (announce.View.New):
// long enough for the reports of the addresses that moved while it was
// away (the API server down as well) to reach the API server once it is
// back, which the speakers retry every second.
const probation = 5 * time.Second

// newMembers returns the members of joined that are new at now, and when
// the first of them stops being new (zero if none is). A member is new
// for probation after it joined, if it joined at least probation after
// the oldest member: members that joined together (a fresh install, the
// speakers all restarted) are none of them new, so that no address moves
// as their probations end a few milliseconds apart. A zero join time (an
// older speaker) is the oldest of all.
func newMembers(joined map[string]time.Time, now time.Time) (out map[string]bool, next time.Time) {
	var oldest time.Time
	first := true
	for _, t := range joined {
		if first || t.Before(oldest) {
			oldest, first = t, false
		}
	}
	for name, t := range joined {
		if t.IsZero() || t.Sub(oldest) < probation {
			continue
		}
		if end := t.Add(probation); end.After(now) {
			if out == nil {
				out = map[string]bool{}
			}
			out[name] = true
			if next.IsZero() || end.Before(next) {
				next = end
			}
		}
	}
	return out, next
}
