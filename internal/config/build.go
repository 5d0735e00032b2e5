package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

// Input is every configuration object, as listed from the API server.
type Input struct {
	// ConfigMap is the legacy configuration (data key "config"); may be nil.
	ConfigMap        *corev1.ConfigMap
	Pools            []v1alpha1.IPPool
	L2               []v1alpha1.L2Announcement
	BGPPeers         []v1alpha1.BGPPeer
	BGPAnnouncements []v1alpha1.BGPAnnouncement
	BFDProfiles      []v1alpha1.BFDProfile
	Reservations     []v1alpha1.IPReservation
}

// Build turns every object into one Config, and reports what is wrong.
//
// An invalid object is left out whole and reported as Problems. If prev
// (the Config the previous Build returned, or nil) holds a version of that
// same object (same kind, name and UID), that version stays in force and
// the Problems say so (Outcome KeptLastGood). A process that starts has
// no Config of its own yet: it passes the one LastGood builds of the
// versions saved in the cluster (SaveLastGood).
//
// Rules between objects:
//   - Pool names are unique across IPPools and the ConfigMap's pools; no two
//     pools share an address; BFD profile names are unique across
//     BFDProfiles and the ConfigMap; no two BGPPeers describe the same
//     session (peer address, port, source address and node selectors). A
//     clash is blamed on the newer object (later creationTimestamp, then
//     kind and name), which is treated as invalid (Reason Conflict): an
//     object that works never breaks because someone added a bad one.
//   - A name that matches nothing (an announcement's ipPools or peers, a
//     peer's bfdProfile) is a Warning, not an error: the object stays in
//     force and the name has no effect until the object it names appears.
//     Making it an error would let deleting one pool stop the announcement
//     of every other pool the announcement covers.
//   - A BGPAnnouncement whose aggregation length is too short for a pool
//     it selects does not announce that pool (a Warning naming it); it still
//     announces the others.
//   - A reserved address (IPReservation) must lie in a pool in force and
//     be one the pool hands out; two reservations of one address: the
//     newer is invalid (Reason Conflict), naming the older. Deleting or
//     shrinking a pool under a reservation leaves the reservation out
//     (the Services holding its addresses keep them regardless).
//   - A BGPAnnouncement community that is neither a literal, a well-known
//     name nor an alias of the ConfigMap in force makes it invalid: sending
//     routes without an intended no-export could leak them.
//
// Build never returns nil and does not modify in or prev.
func Build(in Input, prev *Config) (*Config, []Problem) {
	b := &builder{
		prev: prev,
		cfg: &Config{
			Pools:       map[string]*Pool{},
			BFDProfiles: map[string]*BFDProfile{},
			versions:    map[ObjectRef]version{},
		},
		owner:    map[ObjectRef]*unit{},
		poolOf:   map[string]*poolItem{},
		bfdOf:    map[string]*bfdItem{},
		peerOf:   map[peerKey]*peerItem{},
		peerName: map[string]bool{},
		resOf:    map[netip.Addr]*resItem{},
	}

	// Objects that can clash with each other, oldest first, so that the
	// older object always wins. The ConfigMap takes part as one object.
	var units []*unit
	if cm := in.ConfigMap; cm != nil {
		u := newUnit("ConfigMap", &cm.ObjectMeta)
		u.cur = parseLegacy(cm, &u.rep)
		units = append(units, u)
	}
	for i := range in.Pools {
		p := &in.Pools[i]
		u := newUnit("IPPool", &p.ObjectMeta)
		pi := parsePool(p.Name, p.Labels, &p.Spec, crdPath("spec"), crdPath("metadata.name"), &u.rep)
		u.setIfValid(&fragment{pools: []*poolItem{pi}})
		units = append(units, u)
	}
	for i := range in.BFDProfiles {
		p := &in.BFDProfiles[i]
		u := newUnit("BFDProfile", &p.ObjectMeta)
		bi := parseBFD(p.Name, &p.Spec, crdPath("spec"), crdPath("metadata.name"), &u.rep)
		u.setIfValid(&fragment{bfd: []*bfdItem{bi}})
		units = append(units, u)
	}
	for i := range in.BGPPeers {
		p := &in.BGPPeers[i]
		u := newUnit("BGPPeer", &p.ObjectMeta)
		pi := parsePeer(p.Name, &p.Spec, crdPath("spec"), &u.rep)
		u.setIfValid(&fragment{peers: []*peerItem{pi}})
		units = append(units, u)
	}
	sortUnits(units)
	for _, u := range units {
		b.place(u)
	}

	// Announcements clash with nothing, but their communities may use the
	// aliases of the ConfigMap placed above.
	units = units[:0]
	for i := range in.L2 {
		a := &in.L2[i]
		u := newUnit("L2Announcement", &a.ObjectMeta)
		li := parseL2(&a.Spec, crdPath("spec"), &u.rep)
		u.setIfValid(&fragment{l2: []*l2Item{li}})
		units = append(units, u)
	}
	for i := range in.BGPAnnouncements {
		a := &in.BGPAnnouncements[i]
		u := newUnit("BGPAnnouncement", &a.ObjectMeta)
		bi := parseBGPAnnouncement(&a.Spec, b.aliases, crdPath("spec"), &u.rep)
		u.setIfValid(&fragment{bgp: []*bgpItem{bi}})
		units = append(units, u)
	}
	// Reservations clash with each other, and need the pools placed above.
	for i := range in.Reservations {
		r := &in.Reservations[i]
		u := newUnit("IPReservation", &r.ObjectMeta)
		ri := parseReservation(r.Name, &r.Spec, crdPath("spec"), &u.rep)
		u.setIfValid(&fragment{reservations: []*resItem{ri}})
		units = append(units, u)
	}
	sortUnits(units)
	for _, u := range units {
		b.place(u)
	}

	b.resolve()
	slices.SortFunc(b.cfg.Reservations, func(x, y *Reservation) int { return compareRefs(x.Source, y.Source) })
	return b.cfg, b.problems
}

// version is an object's contribution to a Config, kept so that the next
// Build can keep it in force if the object turns invalid.
type version struct {
	uid  types.UID
	frag *fragment
}

// fragment is what one object contributes to a Config. An IPPool gives one
// pool; the legacy ConfigMap gives pools, announcements, peers, BFD
// profiles and community aliases. Announcements and peers are kept as
// written; Build resolves their references into copies each time.
type fragment struct {
	pools   []*poolItem
	peers   []*peerItem
	bfd     []*bfdItem
	l2      []*l2Item
	bgp     []*bgpItem
	aliases map[string]Community
	// reservations holds one IPReservation's item.
	reservations []*resItem
}

// unit is one input object on its way into the Config.
type unit struct {
	ref     ObjectRef
	uid     types.UID
	created time.Time
	cur     *fragment // the object as written; nil if invalid
	rep     report
}

func newUnit(kind string, m *metav1.ObjectMeta) *unit {
	ref := ObjectRef{Kind: kind, Namespace: m.Namespace, Name: m.Name}
	return &unit{ref: ref, uid: m.UID, created: m.CreationTimestamp.Time, rep: report{ref: ref}}
}

func (u *unit) setIfValid(f *fragment) {
	if u.rep.ok() {
		u.cur = f
	}
}

// sortUnits orders units oldest first: by creationTimestamp, then kind,
// namespace and name, so the order never depends on how they were listed.
func sortUnits(us []*unit) {
	slices.SortFunc(us, func(a, b *unit) int {
		return cmp.Or(a.created.Compare(b.created), compareRefs(a.ref, b.ref))
	})
}

// precedes explains to an operator why older wins over u.
func precedes(older, u *unit) string {
	if older.created.Before(u.created) {
		return "it was created first"
	}
	return "it was created at the same time and sorts first by kind and name"
}

type builder struct {
	prev     *Config
	cfg      *Config
	problems []Problem

	// In force so far.
	owner    map[ObjectRef]*unit
	poolOf   map[string]*poolItem
	pools    []*poolItem
	ranges   []ownedRange // every range of pools, sorted; they never overlap
	bfdOf    map[string]*bfdItem
	peerOf   map[peerKey]*peerItem
	peerName map[string]bool
	peers    []*peerItem
	resOf    map[netip.Addr]*resItem // reserved addresses in force
	l2       []*l2Item
	bgp      []*bgpItem
	aliases  map[string]Community
}

// place puts u's current version in force if it is valid and clashes with
// nothing placed before it; otherwise its last good version from prev, if
// that clashes with nothing; otherwise nothing.
func (b *builder) place(u *unit) {
	if u.cur != nil {
		clashes := b.clashes(u, u.cur)
		if len(clashes) == 0 {
			b.accept(u, u.cur)
			return
		}
		u.rep.list = append(u.rep.list, clashes...)
	}
	outcome := LeftOut
	if b.prev != nil {
		if v, ok := b.prev.versions[u.ref]; ok && v.uid == u.uid && len(b.clashes(u, v.frag)) == 0 {
			b.accept(u, v.frag)
			outcome = KeptLastGood
		}
	}
	for _, p := range u.rep.list {
		p.Outcome = outcome
		b.problems = append(b.problems, p)
	}
}

// clashes returns the problems f would cause next to what is in force.
func (b *builder) clashes(u *unit, f *fragment) []Problem {
	var out []Problem
	conflict := func(at fieldPath, format string, args ...any) {
		out = append(out, Problem{Object: u.ref, Field: at.String(), Message: fmt.Sprintf(format, args...), Reason: v1alpha1.ReasonConflict})
	}
	for _, pi := range f.pools {
		if o, ok := b.poolOf[pi.pool.Name]; ok {
			conflict(pi.nameAt, "pool name %q is already used by %s, which takes precedence because %s; pool names must be unique across IPPools and the legacy ConfigMap",
				pi.pool.Name, o.pool.Source, precedes(b.owner[o.pool.Source], u))
		}
		for i, rg := range pi.pool.Ranges {
			if o, ok := b.overlapping(rg); ok {
				conflict(pi.addressAt(i), "%s overlaps %s of pool %q (%s, %s), which takes precedence because %s; an address can belong to one pool only",
					pi.written[i], o.pool.written[o.i], o.pool.pool.Name, o.pool.pool.Source, o.pool.addressAt(o.i), precedes(b.owner[o.pool.pool.Source], u))
			}
		}
	}
	for _, bi := range f.bfd {
		if o, ok := b.bfdOf[bi.profile.Name]; ok {
			conflict(bi.nameAt, "BFD profile name %q is already used by %s, which takes precedence because %s",
				bi.profile.Name, o.profile.Source, precedes(b.owner[o.profile.Source], u))
		}
	}
	for _, pi := range f.peers {
		if o, ok := b.peerOf[pi.key()]; ok {
			conflict(pi.at, "describes the same BGP session as %s (%s): same peer address, port, source address and node selectors; %s takes precedence because %s",
				o.peer.Source, o.peer.Name, o.peer.Source, precedes(b.owner[o.peer.Source], u))
		}
	}
	for _, ri := range f.reservations {
		out = b.reservationClashes(u, ri, out)
	}
	return out
}

func (b *builder) accept(u *unit, f *fragment) {
	b.owner[u.ref] = u
	b.cfg.versions[u.ref] = version{uid: u.uid, frag: f}
	for _, pi := range f.pools {
		b.poolOf[pi.pool.Name] = pi
		b.pools = append(b.pools, pi)
		b.cfg.Pools[pi.pool.Name] = pi.pool
		for i, rg := range pi.pool.Ranges {
			j := sort.Search(len(b.ranges), func(k int) bool { return rg.From.Less(b.ranges[k].r.From) })
			b.ranges = slices.Insert(b.ranges, j, ownedRange{rg, pi, i})
		}
	}
	for _, bi := range f.bfd {
		b.bfdOf[bi.profile.Name] = bi
		b.cfg.BFDProfiles[bi.profile.Name] = bi.profile
	}
	for _, pi := range f.peers {
		b.peerOf[pi.key()] = pi
		b.peerName[pi.peer.Name] = true
		b.peers = append(b.peers, pi)
	}
	for _, ri := range f.reservations {
		for _, a := range ri.res.Addrs {
			b.resOf[a] = ri
		}
		b.cfg.Reservations = append(b.cfg.Reservations, ri.res)
	}
	b.l2 = append(b.l2, f.l2...)
	b.bgp = append(b.bgp, f.bgp...)
	if f.aliases != nil {
		b.aliases = f.aliases
	}
}

// ownedRange is entry i of a pool in force.
type ownedRange struct {
	r    ipam.Range
	pool *poolItem
	i    int
}

// overlapping returns the lowest range in force that overlaps rg. The
// ranges in force are disjoint, so sorted by start they are sorted by end
// too, and the candidates sit just before the first one starting after rg.
func (b *builder) overlapping(rg ipam.Range) (ownedRange, bool) {
	j := sort.Search(len(b.ranges), func(k int) bool { return rg.To.Less(b.ranges[k].r.From) })
	found := -1
	for k := j - 1; k >= 0 && b.ranges[k].r.Overlaps(rg); k-- {
		found = k
	}
	if found < 0 {
		return ownedRange{}, false
	}
	return b.ranges[found], true
}

// resolve fills in the references of the peers and announcements in force,
// in copies (the versions are shared with other Configs), and reports the
// names that match nothing.
func (b *builder) resolve() {
	warn := func(ref ObjectRef, at fieldPath, reason, format string, args ...any) {
		b.problems = append(b.problems, Problem{Object: ref, Field: at.String(), Message: fmt.Sprintf(format, args...), Reason: reason, Outcome: Warning})
	}
	bySource := func(a, b ObjectRef) int { return compareRefs(a, b) }

	slices.SortStableFunc(b.peers, func(x, y *peerItem) int { return bySource(x.peer.Source, y.peer.Source) })
	for _, pi := range b.peers {
		p := pi.peer
		if p.BFDProfile != "" && b.bfdOf[p.BFDProfile] == nil {
			warn(p.Source, pi.at.child("bfdProfile"), v1alpha1.ReasonMissingReference,
				"no BFD profile named %q; the session runs without BFD until one exists", p.BFDProfile)
			cp := *p
			cp.BFDProfile = ""
			p = &cp
		}
		b.cfg.BGPPeers = append(b.cfg.BGPPeers, p)
	}

	slices.SortStableFunc(b.l2, func(x, y *l2Item) int { return bySource(x.ann.Source, y.ann.Source) })
	for _, li := range b.l2 {
		a := *li.ann
		a.Pools = b.selectPools(a.IPPools, a.IPPoolSelectors, func(i int, name string) {
			warn(a.Source, li.at.child("ipPools").index(i), v1alpha1.ReasonMissingReference,
				"no pool named %q; nothing is announced for it until one exists", name)
		})
		b.cfg.L2 = append(b.cfg.L2, &a)
	}

	slices.SortStableFunc(b.bgp, func(x, y *bgpItem) int { return bySource(x.ann.Source, y.ann.Source) })
	for _, bi := range b.bgp {
		a := *bi.ann
		pools := b.selectPools(a.IPPools, a.IPPoolSelectors, func(i int, name string) {
			warn(a.Source, bi.at.child("ipPools").index(i), v1alpha1.ReasonMissingReference,
				"no pool named %q; nothing is announced for it until one exists", name)
		})
		for _, name := range pools {
			if field, msg, ok := aggregationConflict(&a, b.poolOf[name]); !ok {
				warn(a.Source, bi.at.child(field), v1alpha1.ReasonConflict, "pool %q is not announced by this object: %s", name, msg)
				continue
			}
			a.Pools = append(a.Pools, name)
		}
		for i, name := range a.Peers {
			if !b.peerName[name] {
				warn(a.Source, bi.at.child("peers").index(i), v1alpha1.ReasonMissingReference,
					"no BGPPeer named %q; nothing is sent to it until one exists", name)
			}
		}
		b.cfg.BGPAnnouncements = append(b.cfg.BGPAnnouncements, &a)
	}
}

// selectPools returns the names of the pools in force that names and sels
// select, sorted; every pool when both are empty. missing is called for
// each name that matches no pool.
func (b *builder) selectPools(names []string, sels []labels.Selector, missing func(i int, name string)) []string {
	var out []string
	if len(names) == 0 && len(sels) == 0 {
		for name := range b.poolOf {
			out = append(out, name)
		}
		slices.Sort(out)
		return out
	}
	for i, name := range names {
		if b.poolOf[name] == nil {
			missing(i, name)
			continue
		}
		out = append(out, name)
	}
	for _, pi := range b.pools {
		if anyMatches(sels, pi.pool.Labels) && !slices.Contains(out, pi.pool.Name) {
			out = append(out, pi.pool.Name)
		}
	}
	slices.Sort(out)
	return out
}
