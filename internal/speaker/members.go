package speaker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/kube"
)

// membership starts this node's membership and runs it until ctx ends:
// it prepares it (startMembers) until that succeeds, starts it, hands it
// to the sync loop on up, and waits for it to stop. Until then the
// speaker answers for nothing (isSettled): falling back to node readiness
// would have it elect among all Ready nodes while the others elect among
// their members, and two nodes answer for one address. An error here is
// often passing (the API server slow to answer at start-up, the Secret's
// read refused until its RBAC is fixed), so it tries again, every
// retryMax at the slowest. loopCtx is the sync loop's: once it
// ends, nobody takes the membership.
func (s *Speaker) membership(ctx, loopCtx context.Context, up chan<- startedMembers) {
	wait := time.Second
	// Join with this node's data path known (datapath.go's waitFirst).
	s.dataPath.probe.waitFirst(ctx, time.Second)
	for {
		m, err := s.startMembers(ctx)
		if err == nil {
			// The loop takes it and records its metadata (the interfaces
			// are the loop's) before it runs: a member must not be heard
			// without them.
			taken := make(chan struct{})
			select {
			case up <- startedMembers{m, taken}:
			case <-loopCtx.Done():
				return
			}
			select {
			case <-taken:
			case <-loopCtx.Done():
				return
			}
			if err := m.Run(ctx); err != nil {
				s.log.Error("membership stopped; falling back to node readiness", "error", err)
			}
			s.membersDown.Store(true)
			s.kickSync()
			return
		}
		if bad := (*badKeyError)(nil); errors.As(err, &bad) {
			// Every speaker reads the same Secret and fails alike: all
			// fall back to node readiness together, and none answers
			// apart from the others. Waiting would leave every address
			// dark until someone mends the Secret.
			s.log.Error("membership unavailable; falling back to node readiness, so a dead node's addresses move only once the API server marks it NotReady", "error", err)
			s.membersDown.Store(true)
			s.kickSync()
			return
		}
		s.log.Error("membership cannot start yet: answering for nothing until it can, so as never to elect apart from the others", "error", err, "retry", wait)
		if !retryWait(ctx, &wait) {
			return
		}
	}
}

// retryWait waits *wait, then doubles it up to retryMax; it reports false
// if ctx ended first. It paces the speaker's retries of what it needs
// the API server for at start (the membership).
func retryWait(ctx context.Context, wait *time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(*wait):
	}
	*wait = min(2**wait, retryMax)
	return true
}

// startedMembers hands a membership to the sync loop, which closes taken
// once it has recorded the metadata.
type startedMembers struct {
	m     *election.Members
	taken chan struct{}
}

// retryMax bounds the wait between two attempts (retryWait): a fixed
// Secret or RBAC, or an API server back, takes effect within it.
const retryMax = 8 * time.Second

// startMembers prepares this node's membership.
func (s *Speaker) startMembers(ctx context.Context) (*election.Members, error) {
	var nodes corev1.NodeList
	if err := s.cache.List(ctx, &nodes, false); err != nil {
		return nil, err
	}
	var self netip.Addr
	var others []netip.Addr
	for _, n := range nodes.Items {
		ip := kube.InternalIP(&n)
		if !ip.IsValid() {
			continue
		}
		if n.Name == s.opts.NodeName {
			self = ip
		} else {
			others = append(others, ip)
		}
	}
	bind, err := bindAddr(s.opts.MemberlistBind, self)
	if err != nil {
		return nil, err
	}
	key, accept, err := s.secretKey(ctx)
	if err != nil {
		return nil, err
	}
	var join []netip.AddrPort
	for _, ip := range others {
		if ip.Is4() == bind.Addr().Is4() {
			join = append(join, netip.AddrPortFrom(ip, bind.Port()))
		}
	}
	return election.New(election.Options{
		Name:       s.opts.NodeName,
		Bind:       bind,
		Advertise:  bind,
		SecretKey:  key,
		AcceptKeys: accept,
		Join:       join,
		Logger:     s.log.With("component", "members"),
		Tuning:     s.opts.Tuning,
	})
}

// bindAddr reads --memberlist-bind: "" or ":PORT" take the node's address.
func bindAddr(flag string, node netip.Addr) (netip.AddrPort, error) {
	port := uint16(election.DefaultPort)
	host := ""
	if flag != "" {
		if ap, err := netip.ParseAddrPort(flag); err == nil {
			return ap, nil
		}
		if len(flag) > 1 && flag[0] == ':' {
			p, err := strconv.ParseUint(flag[1:], 10, 16)
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("--memberlist-bind %q: bad port", flag)
			}
			port = uint16(p)
		} else {
			host = flag
		}
	}
	if host != "" {
		return netip.AddrPort{}, fmt.Errorf("--memberlist-bind %q: want IP:PORT, :PORT or off", flag)
	}
	if !node.IsValid() {
		return netip.AddrPort{}, errors.New("this node has no InternalIP in its Node object; set --memberlist-bind IP:PORT")
	}
	return netip.AddrPortFrom(node, port), nil
}

// secretKey reads the memberlist key from the Secret, and the keys it
// accepts besides (kube.MemberlistAcceptPrefix). The controller creates
// the Secret (a speaker may not create Secrets: see the controller's
// memberlistkey.go); a speaker that finds none, at a fresh install before
// the controller has run, reads again like after any other error.
func (s *Speaker) secretKey(ctx context.Context) (key []byte, accept [][]byte, err error) {
	r := s.kc // not cached: the speaker does not watch Secrets
	name := types.NamespacedName{Namespace: s.opts.Namespace, Name: s.opts.SecretName}
	var sec corev1.Secret
	switch err := r.Get(ctx, name, &sec); {
	case apierrors.IsNotFound(err):
		return nil, nil, fmt.Errorf("secret %s with the memberlist key does not exist yet: the controller creates it (is it running?)", name)
	case err != nil:
		return nil, nil, fmt.Errorf("read memberlist key from secret %s: %w", name, err)
	}
	return secretKeys(name, sec.Data)
}

// secretKeys reads the key and the accepted keys out of the Secret's
// data, in the order of their names.
func secretKeys(name types.NamespacedName, data map[string][]byte) (key []byte, accept [][]byte, err error) {
	valid := func(k string, v []byte) error {
		switch len(v) {
		case 16, 24, 32:
			return nil
		}
		return &badKeyError{fmt.Sprintf("secret %s: key %q is %d bytes, want 16, 24 or 32", name, k, len(v))}
	}
	key, ok := data[kube.MemberlistSecretKey]
	if !ok {
		return nil, nil, &badKeyError{fmt.Sprintf("secret %s has no key %q", name, kube.MemberlistSecretKey)}
	}
	if err := valid(kube.MemberlistSecretKey, key); err != nil {
		return nil, nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(data)) {
		if strings.HasPrefix(k, kube.MemberlistAcceptPrefix) {
			if err := valid(k, data[k]); err != nil {
				return nil, nil, err
			}
			accept = append(accept, data[k])
		}
	}
	return key, accept, nil
}

// badKeyError is a memberlist key Secret that every speaker reads alike
// and none can use.
type badKeyError struct{ msg string }

func (e *badKeyError) Error() string { return e.msg }
