package speaker

import (
	"testing"
	"time"
)

func TestRestartTime(t *testing.T) {
	for _, tc := range []struct{ hold, want time.Duration }{
		{0, 0},
		{-time.Second, 0},
		{DefaultRestartHold, DefaultRestartHold},
		{1500 * time.Millisecond, 2 * time.Second},
		{time.Millisecond, time.Second},
		{2 * time.Hour, 4095 * time.Second},
	} {
		if got := restartTime(tc.hold); got != tc.want {
			t.Errorf("restartTime(%v) = %v, want %v", tc.hold, got, tc.want)
		}
	}
}
