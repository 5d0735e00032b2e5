package routerctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"
)

// VTY is a connection to one FRR daemon's vty socket speaking vtysh's
// protocol (FRR's lib/vty.c, vtysh_read): a command line ended by a NUL
// byte, answered by the command's output and then three NUL bytes and the
// command's status (CMD_SUCCESS is 0).
type VTY struct {
	conn net.Conn
	r    *bufio.Reader
}

// replyTimeout bounds one command's reply, from either daemon.
const replyTimeout = 10 * time.Second

// DialVTY connects to the vty socket at path ("DIR/bgpd.vty",
// "DIR/bfdd.vty").
func DialVTY(path string) (*VTY, error) {
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("FRR vty socket: %w", err)
	}
	return &VTY{conn: conn, r: bufio.NewReader(conn)}, nil
}

// Close closes the connection.
func (v *VTY) Close() error { return v.conn.Close() }

// Command runs one command and returns its output.
func (v *VTY) Command(cmd string) ([]byte, error) {
	v.conn.SetDeadline(time.Now().Add(replyTimeout))
	if _, err := v.conn.Write(append([]byte(cmd), 0)); err != nil {
		return nil, fmt.Errorf("FRR %q: %w", cmd, err)
	}
	out, err := readVTYReply(v.r)
	if err != nil {
		return out, fmt.Errorf("FRR %q: %w", cmd, err)
	}
	return out, nil
}

// ErrVTYStatus is Command's error for a command that FRR ran and failed.
var ErrVTYStatus = errors.New("command failed")

// readVTYReply reads one reply: the output up to three NUL bytes, then the
// status byte.
func readVTYReply(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := r.ReadSlice(0)
		out = append(out, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return out, err
		}
		if !bytes.HasSuffix(out, []byte{0, 0, 0}) {
			continue
		}
		status, err := r.ReadByte()
		if err != nil {
			return out, err
		}
		out = out[:len(out)-3]
		if status != 0 {
			return out, fmt.Errorf("%w: status %d: %s", ErrVTYStatus, status, bytes.TrimSpace(out))
		}
		return out, nil
	}
}
