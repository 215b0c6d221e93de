package main

import (
	"strings"

	"github.com/finsync/finsync/extract/fimento"
	fimentosb "github.com/finsync/finsync/extract/fimento/sandbox"
	"github.com/finsync/finsync/extract/finapi"
	finapisb "github.com/finsync/finsync/extract/finapi/sandbox"
	"github.com/finsync/finsync/extract/fingoal"
	fgsb "github.com/finsync/finsync/extract/fingoal/sandbox"
	"github.com/finsync/finsync/extract/fino"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
)

// The tests' typed access to the fakes, which reach beyond extract.Sandbox
// (their synthetic ledgers, counters and clocks).
func (sb *sandbox) fino() *finosb.Server       { return sb.fakes["fino"].(fino.Fake).Server }
func (sb *sandbox) finapi() *finapisb.Server   { return sb.fakes["finapi"].(finapi.Fake).Server }
func (sb *sandbox) fimento() *fimentosb.Server { return sb.fakes["fimento"].(fimento.Fake).Server }
func (sb *sandbox) fingoal() *fgsb.Server      { return sb.fakes["fingoal"].(fingoal.Fake).Server }

// fingoalURL is FINSYNC_FINGOAL_BASE_URL for the sandbox.
func (sb *sandbox) fingoalURL() string { return sb.baseURL("fingoal") + "/v3" }

// finapiMandators are the finAPI sandbox's tenants, as its settings name them.
var finapiMandators = []string{"mandator-a", "mandator-b"}

// fingoalIDKey keys the opaque ids the sandbox settings send FinGoal.
const fingoalIDKey = "sandbox-id-key-not-a-secret"

// into adds the sandbox's settings (sb.env) to env and returns it.
func (sb *sandbox) into(env map[string]string) map[string]string {
	for _, kv := range sb.env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}
