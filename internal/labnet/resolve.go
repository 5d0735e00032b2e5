package labnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/mdlayher/arp"
)

// deadliner is the part of a socket that collect needs.
type deadliner interface{ SetReadDeadline(time.Time) error }

// collect reads with read until the window of length timeout ends or ctx is
// done, and returns the distinct MACs read reported, in arrival order. read
// returns nil for a packet that is not an answer. It returns ctx.Err() if
// ctx ended the window early.
func collect(ctx context.Context, conn deadliner, timeout time.Duration, read func() (net.HardwareAddr, error)) ([]net.HardwareAddr, error) {
	deadline := time.Now().Add(timeout)
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	var macs []net.HardwareAddr
	for {
		mac, err := read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return macs, ctx.Err()
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return macs, err
			}
			// A malformed packet on the wire is not our failure, nor is
			// a transient socket error; but do not spin on a lasting one.
			if ctx.Err() != nil || time.Now().After(deadline) {
				return macs, ctx.Err()
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if mac != nil && !slices.ContainsFunc(macs, func(m net.HardwareAddr) bool { return bytes.Equal(m, mac) }) {
			macs = append(macs, mac)
		}
	}
}

// ARPRequest broadcasts one ARP who-has for target (RFC 826) from the host's
// interface ifname ("" means its LAN interface) and returns the MAC of every
// host that answers within timeout, each once, in arrival order. No answer is
// an empty result, not an error: tests assert "exactly one MAC answers" or
// "nobody answers" on the result.
//
// Only replies addressed to this host's MAC that claim target are counted,
// so gratuitous ARP sent meanwhile (an announcement, not an answer) is not.
func (h *Host) ARPRequest(ctx context.Context, ifname string, target netip.Addr, timeout time.Duration) ([]net.HardwareAddr, error) {
	if !target.Is4() {
		return nil, fmt.Errorf("%s: ARP request for %s: not an IPv4 address", h.Name, target)
	}
	if ifname == "" {
		ifname = h.IfName
	}
	var c *arp.Client
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP request for %s: %w", target, err)
	}
	defer c.Close()
	if err := c.Request(target); err != nil {
		return nil, fmt.Errorf("%s: ARP request for %s: %w", h.Name, target, err)
	}
	self := c.HardwareAddr()
	macs, err := collect(ctx, c, timeout, func() (net.HardwareAddr, error) {
		p, _, err := c.Read()
		if err != nil {
			return nil, err
		}
		if p.Operation != arp.OperationReply || p.SenderIP != target || !bytes.Equal(p.TargetHardwareAddr, self) {
			return nil, nil
		}
		return p.SenderHardwareAddr, nil
	})
	if err != nil {
		return macs, fmt.Errorf("%s: ARP request for %s: %w", h.Name, target, err)
	}
	return macs, nil
}
