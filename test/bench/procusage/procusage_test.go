package procusage

import (
	"os"
	"strconv"
	"testing"
)

func TestReadSelf(t *testing.T) {
	for _, pid := range []string{strconv.Itoa(os.Getpid()), "self"} {
		u, err := Read(pid)
		if err != nil {
			t.Fatal(err)
		}
		if u.PeakRSS < u.RSS || u.RSS <= 0 || u.CPU < 0 || u.RSSAnon <= 0 || u.RSSFile <= 0 || u.RSSAnon+u.RSSFile > u.RSS {
			t.Errorf("usage of %s %+v: want 0 < RSS <= peak RSS, CPU >= 0, 0 < anon + file <= RSS", pid, u)
		}
	}
}

func TestReadMissing(t *testing.T) {
	if _, err := Read("0"); err == nil {
		t.Error("Read(\"0\"): no error for a process that does not exist")
	}
}
