package election

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newStdLogger returns the *log.Logger memberlist insists on, writing to
// logger. memberlist formats every line as "[LEVEL] memberlist: message";
// the level becomes the slog level and the rest the message, so there is
// one log stream with one set of levels (STYLE.md: one logger).
func newStdLogger(logger *slog.Logger) *log.Logger {
	return log.New(slogWriter{logger}, "", 0)
}

// slogWriter is an io.Writer that logs each write as one record. A
// *log.Logger makes exactly one Write per Printf, so a write is a line.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	level, msg := parseLine(p)
	// A background context: memberlist's goroutines carry none, and the
	// handler may not be given nil.
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// parseLine splits a memberlist log line into its level and message,
// dropping the "memberlist: " prefix and the trailing newline. A line
// without a known level tag is logged at Info as it is.
//
// memberlist logs at ERR things that are routine while a peer is down (a
// failed probe or gossip to it); they are errors from its point of view, so
// they stay errors here.
func parseLine(p []byte) (slog.Level, string) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	if tag, rest, ok := bytes.Cut(line, []byte("] ")); ok && len(tag) > 0 && tag[0] == '[' {
		known := true
		switch string(tag[1:]) {
		case "ERR", "ERROR":
			level = slog.LevelError
		case "WARN":
			level = slog.LevelWarn
		case "INFO":
			level = slog.LevelInfo
		case "DEBUG", "TRACE":
			level = slog.LevelDebug
		default:
			known = false
		}
		if known {
			line = rest
		}
	}
	line, _ = bytes.CutPrefix(line, []byte("memberlist: "))
	return level, string(line)
}
