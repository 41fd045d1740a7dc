package topology

import (
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

func TestCanCommit(t *testing.T) {
	ids := func(xs ...nodeid.ID) []nodeid.ID { return xs }
	four := ids(1, 2, 3, 4)
	tests := []struct {
		name          string
		last, visible []nodeid.ID
		majority      bool
	}{
		{"nothing committed", nil, ids(1), true},
		{"all visible", four, four, true},
		{"three of four", four, ids(1, 2, 3), true},
		{"2|2 tie, one side", four, ids(1, 2), false},
		{"2|2 tie, other side", four, ids(3, 4), false},
		{"one of four", four, ids(4), false},
		{"two of three", ids(1, 2, 3), ids(1, 3), true},
		{"one of three", ids(1, 2, 3), ids(2), false},
		{"alone", ids(1), ids(1), true},
		{"two-member cluster loses one", ids(1, 2), ids(1), false},
		{"newcomers do not count", four, ids(1, 2, 5, 6, 7), false},
		{"duplicates count once", four, ids(1, 1, 2, 2), false},
		{"duplicated committed ids count once", ids(1, 1, 2, 3), ids(1, 2), true},
		{"nothing visible", four, nil, false},
		{"3|2 majority side", ids(1, 2, 3, 4, 5), ids(3, 4, 5), true},
		{"3|2 minority side", ids(1, 2, 3, 4, 5), ids(1, 2), false},
	}
	for _, tt := range tests {
		if got := CanCommit(Majority{}, tt.last, tt.visible); got != tt.majority {
			t.Errorf("%s: Majority = %v, want %v", tt.name, got, tt.majority)
		}
		if got := CanCommit(nil, tt.last, tt.visible); got != tt.majority {
			t.Errorf("%s: nil policy = %v, want Majority's %v", tt.name, got, tt.majority)
		}
		if !CanCommit(Always{}, tt.last, tt.visible) {
			t.Errorf("%s: Always refused", tt.name)
		}
	}
}

func TestPolicyByName(t *testing.T) {
	tests := []struct {
		name    string
		want    Policy
		wantErr bool
	}{
		{"majority", Majority{}, false},
		{"Always", Always{}, false},
		{"quorum", nil, true},
	}
	for _, tt := range tests {
		got, err := PolicyByName(tt.name)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("PolicyByName(%q) = %v, %v; want %v (error %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}
