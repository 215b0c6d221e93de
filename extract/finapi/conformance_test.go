package finapi_test

import (
	"testing"

	"github.com/finsync/finsync/extract/extracttest"
	"github.com/finsync/finsync/extract/finapi"
)

func TestConformance(t *testing.T) { extracttest.Conformance(t, &finapi.Settings{}, "FINSYNC_FINAPI_") }
