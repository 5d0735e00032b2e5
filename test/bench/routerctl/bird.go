package routerctl

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// BIRD is a connection to BIRD's control socket speaking its CLI protocol,
// as birdc does.
type BIRD struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialBIRD connects to the control socket at path ("DIR/bird.ctl") and
// reads BIRD's greeting ("0001 BIRD 2.0.12 ready.").
func DialBIRD(path string) (*BIRD, error) {
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("bird control socket: %w", err)
	}
	b := &BIRD{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(replyTimeout))
	if _, err := b.reply(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("bird greeting: %w", err)
	}
	return b, nil
}

// Close closes the connection.
func (b *BIRD) Close() error { return b.conn.Close() }

// Command sends one CLI command and returns the lines of its reply, codes
// included (see ReplyCode).
func (b *BIRD) Command(cmd string) ([]string, error) {
	b.conn.SetDeadline(time.Now().Add(replyTimeout))
	if _, err := fmt.Fprintf(b.conn, "%s\n", cmd); err != nil {
		return nil, fmt.Errorf("bird %q: %w", cmd, err)
	}
	lines, err := b.reply()
	if err != nil {
		return lines, fmt.Errorf("bird %q: %w", cmd, err)
	}
	return lines, nil
}

// reply reads the lines of one reply. Each line is a four-digit code and
// '-' (more follow) or ' ' (the last), or a continuation starting with a
// space; codes 8xxx and 9xxx are errors (BIRD's doc/prog, "CLI").
func (b *BIRD) reply() ([]string, error) {
	var lines []string
	for {
		line, err := b.r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		line = strings.TrimSuffix(line, "\n")
		lines = append(lines, line)
		code, last := ReplyCode(line)
		if !last {
			continue
		}
		if code[0] == '8' || code[0] == '9' {
			return lines, fmt.Errorf("error %s: %s", code, line[5:])
		}
		return lines, nil
	}
}

// ReplyCode returns the code of a line of BIRD's reply ("" for a
// continuation) and whether the line ends the reply.
func ReplyCode(line string) (code string, last bool) {
	if len(line) < 5 || line[4] != ' ' && line[4] != '-' {
		return "", false
	}
	for _, c := range line[:4] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return line[:4], line[4] == ' '
}

// ReplyText is a reply line without its code: the text BIRD printed.
func ReplyText(line string) string {
	if code, _ := ReplyCode(line); code != "" {
		return line[5:]
	}
	return line
}

// BIRDProtocol is the name internal/labnet gives BIRD's BGP protocol for
// neighbour a: BIRD's names are symbols, so "n_198_51_100_11" or
// "n_2001_db8_1__11".
func BIRDProtocol(a netip.Addr) string {
	return "n_" + strings.NewReplacer(".", "_", ":", "_").Replace(a.String())
}
