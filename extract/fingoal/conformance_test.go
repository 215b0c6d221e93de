package fingoal_test

import (
	"testing"

	"github.com/finsync/finsync/extract/extracttest"
	"github.com/finsync/finsync/extract/fingoal"
)

func TestConformance(t *testing.T) {
	extracttest.Conformance(t, &fingoal.Settings{}, "FINSYNC_FINGOAL_")
}
