package relay

import (
	"errors"
	"testing"
)

func TestCursorAdvance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cur  cursor
		read readResult
		want cursor
	}{{
		name: "nothing read, nothing running: unchanged",
		cur:  cursor{xid: 10, seq: 5},
		read: readResult{pendingComplete: true, snap: snapshot{xmin: 20, xmax: 20}},
		want: cursor{xid: 10, seq: 5},
	}, {
		name: "moves to the last row; a transaction running below it becomes pending, one above does not",
		cur:  cursor{xid: 10, seq: 5},
		read: readResult{
			rows:            []position{{11, 6}, {13, 7}, {13, 9}},
			pendingComplete: true,
			snap:            snapshot{xmin: 12, xmax: 16, xip: []int64{12, 15}},
		},
		want: cursor{xid: 13, seq: 9, pending: []pendingTx{{xid: 12}}},
	}, {
		name: "a pending transaction that ended is dropped once its rows are read",
		cur:  cursor{xid: 13, seq: 9, pending: []pendingTx{{xid: 12}}},
		read: readResult{
			rows:            []position{{12, 8}, {14, 10}},
			pendingComplete: true,
			snap:            snapshot{xmin: 15, xmax: 15},
		},
		want: cursor{xid: 14, seq: 10},
	}, {
		name: "a pending transaction still running keeps its place past the rows read",
		cur:  cursor{xid: 13, seq: 9, pending: []pendingTx{{xid: 12, seq: 3}}},
		read: readResult{
			rows:            []position{{12, 8}},
			pendingComplete: true,
			snap:            snapshot{xmin: 12, xmax: 15, xip: []int64{12}},
		},
		want: cursor{xid: 13, seq: 9, pending: []pendingTx{{xid: 12, seq: 8}}},
	}, {
		name: "an ended pending transaction whose rows were not all read (the batch was full) stays",
		cur:  cursor{xid: 13, seq: 9, pending: []pendingTx{{xid: 12}}},
		read: readResult{
			rows:            []position{{12, 8}},
			pendingComplete: false,
			snap:            snapshot{xmin: 15, xmax: 15},
		},
		want: cursor{xid: 13, seq: 9, pending: []pendingTx{{xid: 12, seq: 8}}},
	}, {
		name: "an aborted pending transaction (no rows) is dropped once it ended",
		cur:  cursor{xid: 13, seq: 9, pending: []pendingTx{{xid: 11}, {xid: 12}}},
		read: readResult{pendingComplete: true, snap: snapshot{xmin: 12, xmax: 14, xip: []int64{12}}},
		want: cursor{xid: 13, seq: 9, pending: []pendingTx{{xid: 12}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.cur.advance(tt.read)
			if !got.equal(tt.want) {
				t.Fatalf("advance = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSnapshotFinished(t *testing.T) {
	t.Parallel()
	s := snapshot{xmin: 10, xmax: 20, xip: []int64{10, 15}}
	for x, want := range map[int64]bool{9: true, 10: false, 12: true, 15: false, 19: true, 20: false, 25: false} {
		if got := s.finished(x); got != want {
			t.Errorf("finished(%d) = %t, want %t", x, got, want)
		}
	}
}

func TestCursorCheck_RefusesACursorAheadOfTheCluster(t *testing.T) {
	t.Parallel()
	s := snapshot{xmin: 800, xmax: 827}
	for _, c := range []cursor{{xid: 3745, seq: 9}, {xid: 20, pending: []pendingTx{{xid: 900}}}} {
		if err := c.check(s); !errors.Is(err, ErrCursorAhead) {
			t.Errorf("check(%+v) = %v, want ErrCursorAhead", c, err)
		}
	}
	if err := (cursor{xid: 826, pending: []pendingTx{{xid: 800}}}).check(s); err != nil {
		t.Errorf("a cursor behind the snapshot refused: %v", err)
	}
}
