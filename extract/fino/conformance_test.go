package fino_test

import (
	"testing"

	"github.com/finsync/finsync/extract/extracttest"
	"github.com/finsync/finsync/extract/fino"
)

func TestConformance(t *testing.T) { extracttest.Conformance(t, &fino.Settings{}, "FINSYNC_FINO_") }
