package fimento_test

import (
	"testing"

	"github.com/finsync/finsync/extract/extracttest"
	"github.com/finsync/finsync/extract/fimento"
)

func TestConformance(t *testing.T) {
	extracttest.Conformance(t, &fimento.Settings{}, "FINSYNC_FIMENTO_")
}
