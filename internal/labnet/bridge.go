package labnet

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/mdlayher/packet"
)

// etherTypeLabProbe is the EtherType of the lab's own link probes: 0x88b5,
// "local experimental" (IEEE 802), which every host's kernel ignores.
const etherTypeLabProbe = 0x88b5

// waitForwarding returns once a frame sent from the host's eth0 comes out
// of the bridge. After a link comes up, the kernel attaches the device's
// queueing discipline and lets the bridge enable the port from deferred
// link-watch work, which can run up to a second later on a busy machine, and
// drops packets until then; polling link states still leaves a window, so
// this proves the path instead. It sends broadcast frames of a type nobody
// handles, so no ARP or neighbor cache is touched.
func (h *Host) waitForwarding() error {
	l := h.lab
	var rx, tx *packet.Conn
	err := doIn(l.swFd, func() error {
		br, err := net.InterfaceByName(bridgeName)
		if err != nil {
			return err
		}
		rx, err = packet.Listen(br, packet.Raw, etherTypeLabProbe, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("host %s: link probe receiver: %w", h.Name, err)
	}
	defer rx.Close()
	var ifi *net.Interface
	err = h.Do(func() (err error) {
		if ifi, err = net.InterfaceByName(h.IfName); err != nil {
			return err
		}
		tx, err = packet.Listen(ifi, packet.Raw, etherTypeLabProbe, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("link probe sender: %w", err)
	}
	defer tx.Close()

	token := make([]byte, 16)
	rand.Read(token)
	broadcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frame := make([]byte, 60) // the Ethernet minimum, zero-padded
	copy(frame[0:6], broadcast)
	copy(frame[6:12], ifi.HardwareAddr)
	binary.BigEndian.PutUint16(frame[12:14], etherTypeLabProbe)
	copy(frame[14:], token)

	buf := make([]byte, 1514)
	deadline := time.Now().Add(linkWait)
	for time.Now().Before(deadline) {
		if _, err := tx.WriteTo(frame, &packet.Addr{HardwareAddr: broadcast}); err != nil {
			// ENETDOWN and the like while the link settles: retry.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		rx.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		for {
			n, _, err := rx.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return fmt.Errorf("host %s: link probe: %w", h.Name, err)
			}
			if n >= 14+len(token) && bytes.Equal(buf[14:14+len(token)], token) {
				return nil
			}
		}
	}
	return fmt.Errorf("host %s: no frame crossed the switch within %v", h.Name, linkWait)
}
