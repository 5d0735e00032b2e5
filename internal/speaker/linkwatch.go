package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// linkRetry is how long watchLinks waits before subscribing again after
// its subscription failed or broke.
const linkRetry = time.Second

// watchLinks calls changed whenever a link or an address of this host's
// network namespace changes (the kernel's rtnetlink link and address
// groups: a link made, deleted, brought up or down, an address added or
// removed), until ctx ends; it returns once the subscriptions' goroutines
// have ended. It only signals: what the change means is for the sync loop
// to work out, on its own goroutine, by reading the interfaces again
// (Speaker.refreshIfaces).
//
// A subscription breaks when the kernel drops messages for it (ENOBUFS,
// after a burst of changes faster than it is read): watchLinks then
// signals anyway, since a change may be among those lost, and subscribes
// again after linkRetry. The periodic resync reads the interfaces as
// well, in case a change goes unheard all the same.
func watchLinks(ctx context.Context, log *slog.Logger, changed func()) {
	for {
		err := watchLinksOnce(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		log.Warn("watching network interfaces; subscribing again", "error", err, "in", linkRetry)
		changed()
		t := time.NewTimer(linkRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// watchLinksOnce subscribes to link and address changes, calls changed on
// each until ctx ends (nil) or a subscription breaks (its error), and
// waits for netlink's reader goroutines to end before it returns.
func watchLinksOnce(ctx context.Context, changed func()) error {
	done := make(chan struct{})
	var mu sync.Mutex
	var last error // the subscriptions' last error, from netlink's goroutines
	onErr := func(err error) {
		mu.Lock()
		last = err
		mu.Unlock()
	}
	broken := func(what string) error {
		mu.Lock()
		defer mu.Unlock()
		if last == nil {
			return fmt.Errorf("the subscription to %s ended", what)
		}
		return fmt.Errorf("the subscription to %s ended: %w", what, last)
	}
	// netlink's reader goroutine closes its channel when it stops: on a
	// receive error, which closing done causes.
	links := make(chan netlink.LinkUpdate, 16)
	addrs := make(chan netlink.AddrUpdate, 16)
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		close(done)
		return fmt.Errorf("subscribe to links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		close(done)
		for range links {
		}
		return fmt.Errorf("subscribe to addresses: %w", err)
	}
	defer func() {
		// The readers block sending to a full channel: drain both until
		// they are closed.
		close(done)
		for range links {
		}
		for range addrs {
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-links:
			if !ok {
				return broken("links")
			}
		case _, ok := <-addrs:
			if !ok {
				return broken("addresses")
			}
		}
		changed()
	}
}
