package wire

import "testing"

// TestLimitsWithDefaults checks that zero and negative fields take their
// documented defaults and set ones are kept.
func TestLimitsWithDefaults(t *testing.T) {
	def := Limits{MaxNesting: 32, MaxArrayElements: 1 << 20, MaxMapPairs: 1 << 20, MaxAmplification: DefaultAmplification}
	for _, tt := range []struct {
		name string
		in   Limits
		want Limits
	}{
		{"zero", Limits{}, def},
		{"negative", Limits{MaxNesting: -1, MaxArrayElements: -1, MaxMapPairs: -1, MaxAmplification: -1}, def},
		{"set", Limits{MaxNesting: 4, MaxArrayElements: 5, MaxMapPairs: 6, MaxAmplification: 7}, Limits{MaxNesting: 4, MaxArrayElements: 5, MaxMapPairs: 6, MaxAmplification: 7}},
		{"mixed", Limits{MaxNesting: 4}, Limits{MaxNesting: 4, MaxArrayElements: 1 << 20, MaxMapPairs: 1 << 20, MaxAmplification: DefaultAmplification}},
	} {
		if got := tt.in.WithDefaults(); got != tt.want {
			t.Errorf("%s: %+v.WithDefaults() = %+v, want %+v", tt.name, tt.in, got, tt.want)
		}
	}
}
