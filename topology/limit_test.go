package topology

import (
	"errors"
	"testing"
)

func TestCheckSize(t *testing.T) {
	for _, tc := range []struct {
		s    Strategy
		n    int
		fail bool
	}{
		{Bus{}, MaxBusMembers, false},
		{Bus{}, MaxBusMembers + 1, true},
		{Ring{}, 100000, false},
		{Hypercube{}, 100000, false},
		{Star{}, 100000, false},
	} {
		err := CheckSize(tc.s, tc.n)
		if (err != nil) != tc.fail || (err != nil && !errors.Is(err, ErrTooManyMembers)) {
			t.Errorf("CheckSize(%s, %d) = %v, want failure %v wrapping ErrTooManyMembers", tc.s.Name(), tc.n, err, tc.fail)
		}
	}
	if MaxMembers(Ring{}) != 0 || MaxMembers(Bus{}) != MaxBusMembers {
		t.Errorf("MaxMembers: ring %d, bus %d", MaxMembers(Ring{}), MaxMembers(Bus{}))
	}
}
