package extract

import (
	"strings"
	"testing"
)

func TestMorePages(t *testing.T) {
	tests := []struct {
		name          string
		read          int
		p             Page
		more          bool
		contradiction bool
	}{
		{"honest, more to come", 1, Page{Elements: 10, TotalPages: 3, TotalElements: 25, Size: 10}, true, false},
		{"honest, last page", 3, Page{Elements: 5, TotalPages: 3, TotalElements: 25, Size: 10}, false, false},
		{"an empty page ends it whatever the totals", 1, Page{Elements: 0, TotalPages: 1_000_000_000}, false, false},
		{"no totals: one page", 1, Page{Elements: 10}, false, false},
		{"totalPages alone", 4, Page{Elements: 10, TotalPages: 9}, true, false},
		{"a billion pages over 25 elements: capped", 3, Page{Elements: 10, TotalPages: 1_000_000_000, TotalElements: 25, Size: 10}, true, true},
		{"capped at what the elements fill, plus one", 4, Page{Elements: 10, TotalPages: 1_000_000_000, TotalElements: 25, Size: 10}, false, true},
		{"one page more than the elements fill is allowed", 1, Page{Elements: 10, TotalPages: 4, TotalElements: 25, Size: 10}, true, false},
	}
	for _, tc := range tests {
		more, why := MorePages(tc.read, tc.p)
		if more != tc.more || (why != "") != tc.contradiction || (why != "" && !strings.Contains(why, "contradicts totalElements")) {
			t.Errorf("%s: more %v, contradiction %q", tc.name, more, why)
		}
	}
}
