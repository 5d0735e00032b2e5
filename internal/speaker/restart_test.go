package speaker

import (
	"testing"
	"time"
)

func TestRestartNote(t *testing.T) {
	note := restartNote{until: time.UnixMilli(1796000020000), joined: time.UnixMilli(1796000000000)}
	got, ok := parseRestartNote(note.encode())
	if !ok || !got.until.Equal(note.until) || !got.joined.Equal(note.joined) {
		t.Fatalf("round trip: %+v, %v", got, ok)
	}
	for _, bad := range []string{"", "1", "a,b", "1796000020000,", ",1796000000000", "1796000000000,1796000020000", "5,0"} {
		if n, ok := parseRestartNote(bad); ok {
			t.Errorf("parseRestartNote(%q) = %+v, want refused", bad, n)
		}
	}
}

func TestResumedJoin(t *testing.T) {
	joined := time.UnixMilli(1796000000000)
	until := joined.Add(time.Hour)
	note := restartNote{until: until, joined: joined}
	for _, tt := range []struct {
		name    string
		note    restartNote
		now     time.Time
		resumed bool
	}{
		{"no note", restartNote{}, until.Add(-time.Minute), false},
		{"back in time", note, until.Add(-time.Minute), true},
		{"within the margin: too late", note, until.Add(-restartMargin + time.Millisecond), false},
		{"after the hold", note, until.Add(time.Second), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, resumed := resumedJoin(tt.note, tt.now)
			want := tt.now
			if tt.resumed {
				want = joined
			}
			if resumed != tt.resumed || !got.Equal(want) {
				t.Errorf("resumedJoin = %v, %v; want %v, %v", got, resumed, want, tt.resumed)
			}
		})
	}
}
