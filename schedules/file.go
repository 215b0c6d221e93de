package schedules

import (
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// DefaultFile is the schedules file built into the binary; FINSYNC_SCHEDULES
// names an operator's file instead.
//
//go:embed default.yaml
var DefaultFile []byte

// Schedules is a parsed schedules file: when and how each stream runs.
type Schedules struct {
	File    string
	Streams []Schedule // sorted by stream name
	// Concurrency caps the runs in flight: over all streams, and per
	// provider (to keep its rate limits); 0 = unlimited.
	Global      int
	PerProvider map[string]int
}

// DefaultTimeout is one run's limit when the schedules file sets none.
const DefaultTimeout = 30 * time.Minute

// Schedule is one stream's entry.
type Schedule struct {
	Stream   string
	Spec     string        // cron: 5 fields or a descriptor (@hourly, @every 1h), optional CRON_TZ=
	Window   time.Duration // backfill window size
	Lookback time.Duration // how far before its cursor a run re-reads (0: the provider's default)
	Timeout  time.Duration // one run's limit
	Jitter   time.Duration // start times spread over [0, Jitter) by a stable hash of the stream
	Tenants  []string      // empty: every configured tenant
	Enabled  bool
	Params   map[string]string // stream parameters (e.g. finAPI thresholds)
	// Catchup runs the stream at the daemon's start when a tick was missed
	// while no daemon ran (its last run started before its last due time);
	// off for snapshots billed per job.
	Catchup bool
	// Reconcile is the cron spec of the stream's reconciliation runs ("":
	// none): the stream's run without its incremental shortcuts
	// (extract.Request.Reconcile), to find late data those missed. Only a
	// stream that honours it (extract.Stream.Reconciles) may have one.
	// ReconcileLookback is how far back such a run reads (0: the
	// provider's default).
	Reconcile         string
	ReconcileLookback time.Duration
	// PerTenant are the effective schedules of the tenants the file
	// overrides (per_tenant): the stream's with what the override names.
	PerTenant map[string]Schedule
	// File and Line are where it is: the last layer naming the stream (or,
	// for a tenant's, the tenant's override).
	File string
	Line int

	cron      cron.Schedule
	reconcile cron.Schedule
	// Where the stream's schedule and params are, for the messages about
	// them (0: not in the file); reconcileAt is "file:line" of its
	// reconcile.
	specLine, paramsLine int
	paramLines           map[string]int
	reconcileLine        int
	reconcileAt          string
}

// Next is the first start after t, jitter included: the spec's times
// shifted by Delay, so a start due at 10:00 with a 7-minute delay happens
// at 10:07, and at 10:03 the next start is 10:07, not 11:07. The daemon's
// cron runs exactly these times.
func (s Schedule) Next(t time.Time) time.Time {
	delay := s.Delay()
	return s.cron.Next(t.Add(-delay)).Add(delay)
}

// NextReconcile is the first reconciliation after t (the zero time when
// the stream has none), shifted by Delay as Next is.
func (s Schedule) NextReconcile(t time.Time) time.Time {
	if s.reconcile == nil {
		return time.Time{}
	}
	delay := s.Delay()
	return s.reconcile.Next(t.Add(-delay)).Add(delay)
}

// Delay is the stream's stable start delay within its Jitter.
func (s Schedule) Delay() time.Duration {
	if s.Jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(s.Stream))
	return time.Duration(h.Sum64() % uint64(s.Jitter))
}

// For is tenant's schedule: its override (PerTenant), else the stream's.
func (s Schedule) For(tenant string) Schedule {
	if t, ok := s.PerTenant[tenant]; ok {
		return t
	}
	return s
}

// Find returns the schedule of a stream.
func (ss *Schedules) Find(stream string) (Schedule, bool) {
	for _, s := range ss.Streams {
		if s.Stream == stream {
			return s, true
		}
	}
	return Schedule{}, false
}

// ParamsCheck validates a stream's parameters; nil means the stream takes
// none.
type ParamsCheck func(params map[string]string) []error

// Layer is one schedules file. Layers overlay each other in order: a
// stream keeps what earlier layers said unless a later one says otherwise,
// key by key (params too), and so do defaults and concurrency. The
// built-in schedules are schedules/default.yaml and each provider's own
// file; an operator's file is the last layer.
type Layer struct {
	Name string
	Data []byte
}

// Parse reads one schedules file. known maps every stream name to the
// check of its parameters. Every problem is reported, each as
// "file:line: ...".
func Parse(file string, data []byte, known map[string]ParamsCheck) (*Schedules, error) {
	return ParseLayers([]Layer{{file, data}}, known)
}

// ParseLayers reads layers, each overlaying the ones before (Layer); the
// result's File names the last.
func ParseLayers(layers []Layer, known map[string]ParamsCheck) (*Schedules, error) {
	ss := &Schedules{PerProvider: map[string]int{}}
	var errs []error
	defaults := Schedule{Window: 24 * time.Hour, Timeout: DefaultTimeout, Jitter: time.Minute, Enabled: true, Catchup: true}
	type entry struct {
		node *yaml.Node
		line int
		file string
		bad  func(line int, format string, args ...any)
	}
	entries := map[string][]entry{}
	var order []string // streams as first met
	for _, l := range layers {
		ss.File = l.Name
		bad := func(line int, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", l.Name, line, fmt.Sprintf(format, args...)))
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(l.Data, &doc); err != nil {
			errs = append(errs, yamlError(l.Name, err))
			continue
		}
		if len(doc.Content) == 0 {
			continue // an empty file changes nothing
		}
		if doc.Content[0].Kind != yaml.MappingNode {
			bad(1, "want a mapping with defaults, concurrency and streams")
			continue
		}
		seen := map[string]bool{}
		for key, val := range pairs(doc.Content[0]) {
			switch key.Value {
			case "defaults":
				readEntry(val, &defaults, bad, levelDefaults)
			case "concurrency":
				for k, v := range pairs(val) {
					n, err := strconv.Atoi(v.Value)
					if err != nil || n < 0 {
						bad(v.Line, "concurrency %s: %q is not a count", k.Value, v.Value)
						continue
					}
					switch {
					case k.Value == "global":
						ss.Global = n
					case strings.HasPrefix(k.Value, "provider."):
						ss.PerProvider[strings.TrimPrefix(k.Value, "provider.")] = n
					default:
						bad(k.Line, "concurrency: unknown key %q (global, provider.<name>)", k.Value)
					}
				}
			case "streams":
				if val.Kind != yaml.MappingNode {
					bad(val.Line, "streams: want a mapping of stream names to their settings")
					continue
				}
				for k, v := range pairs(val) {
					_, ok := known[k.Value]
					switch {
					case !ok:
						bad(k.Line, "unknown stream %q (see finsync streams)", k.Value)
						continue
					case seen[k.Value]:
						bad(k.Line, "stream %q is listed twice", k.Value)
						continue
					}
					seen[k.Value] = true
					if entries[k.Value] == nil {
						order = append(order, k.Value)
					}
					entries[k.Value] = append(entries[k.Value], entry{v, k.Line, l.Name, bad})
				}
			default:
				bad(key.Line, "unknown key %q (defaults, concurrency, streams)", key.Value)
			}
		}
	}
	for _, name := range order {
		es := entries[name]
		s := defaults
		s.Stream, s.Tenants, s.Params = name, slices.Clone(defaults.Tenants), nil
		specBad, paramsBad, reconcileBad := es[0].bad, es[0].bad, es[0].bad
		// The tenants' overrides, each over all layers, in the order met.
		overrides := map[string][]entry{}
		var tenants []string
		for _, e := range es {
			s.Line, s.File = e.line, e.file
			before := s.specLine
			params, reconcile := s.paramsLine, s.reconcileLine
			readEntry(e.node, &s, e.bad, levelStream)
			if s.specLine != before || s.Spec == "" {
				specBad = e.bad
			}
			if s.reconcileLine != reconcile {
				reconcileBad, s.reconcileAt = e.bad, fmt.Sprintf("%s:%d", e.file, s.reconcileLine)
			}
			if s.paramsLine != params {
				paramsBad = e.bad
			}
			for k, v := range pairs(e.node) {
				if k.Value != "per_tenant" {
					continue
				}
				if v.Kind != yaml.MappingNode {
					e.bad(v.Line, "per_tenant: want a mapping of tenant names to their settings")
					continue
				}
				for tk, tv := range pairs(v) {
					if overrides[tk.Value] == nil {
						tenants = append(tenants, tk.Value)
					}
					overrides[tk.Value] = append(overrides[tk.Value], entry{tv, tk.Line, e.file, e.bad})
				}
			}
		}
		check := known[name]
		if s.Spec == "" {
			es[len(es)-1].bad(s.Line, "%s: no schedule", s.Stream)
		} else if c, err := cron.ParseStandard(s.Spec); err != nil {
			specBad(s.specLine, "%s: schedule %q: %v", s.Stream, s.Spec, err)
		} else {
			s.cron = c
		}
		if s.Reconcile != "" {
			if c, err := cron.ParseStandard(s.Reconcile); err != nil {
				reconcileBad(s.reconcileLine, "%s: reconcile %q: %v", s.Stream, s.Reconcile, err)
			} else {
				s.reconcile = c
			}
		}
		checkParams(s, check, paramsBad)
		// A tenant's override starts from the stream's effective settings
		// (every layer's) and changes only what it names.
		for _, tenant := range tenants {
			t := s
			t.Params, t.PerTenant = maps.Clone(s.Params), nil
			var specBad, paramsBad, lastBad func(int, string, ...any)
			specLine, paramsLine := t.specLine, t.paramsLine
			for _, e := range overrides[tenant] {
				t.File, t.Line, lastBad = e.file, e.line, e.bad
				t.specLine, t.paramsLine = 0, 0
				readEntry(e.node, &t, e.bad, levelTenant)
				if t.specLine != 0 {
					specBad, specLine = e.bad, t.specLine
				}
				if t.paramsLine != 0 {
					paramsBad, paramsLine = e.bad, t.paramsLine
				}
			}
			t.specLine, t.paramsLine = specLine, paramsLine
			if len(s.Tenants) > 0 && !slices.Contains(s.Tenants, tenant) {
				lastBad(t.Line, "%s: per_tenant %q is not one of the stream's tenants %v", s.Stream, tenant, s.Tenants)
			}
			what := s.Stream + " for " + tenant
			if specBad != nil {
				if c, err := cron.ParseStandard(t.Spec); err != nil {
					specBad(t.specLine, "%s: schedule %q: %v", what, t.Spec, err)
				} else {
					t.cron = c
				}
			}
			if paramsBad != nil {
				t.Stream = what // for the messages
				checkParams(t, check, paramsBad)
				t.Stream = s.Stream
			}
			if s.PerTenant == nil {
				s.PerTenant = map[string]Schedule{}
			}
			s.PerTenant[tenant] = t
		}
		ss.Streams = append(ss.Streams, s)
	}
	sort.Slice(ss.Streams, func(i, j int) bool { return ss.Streams[i].Stream < ss.Streams[j].Stream })
	return ss, errors.Join(errs...)
}

// CheckReconcile reports every stream with a reconcile that cannot
// reconcile (a snapshot reads everything every run: nothing to find), at
// the reconcile's file:line; reconciles says which streams can
// (extract.Stream.Reconciles).
func (ss *Schedules) CheckReconcile(reconciles func(stream string) bool) error {
	var errs []error
	for _, s := range ss.Streams {
		if s.Reconcile != "" && !reconciles(s.Stream) {
			errs = append(errs, fmt.Errorf("%s: %s: reconcile: the stream is not incremental (it reads everything each run): nothing to reconcile", s.reconcileAt, s.Stream))
		}
	}
	return errors.Join(errs...)
}

// checkParams reports the problems of s's params, each at its line.
func checkParams(s Schedule, check ParamsCheck, bad func(int, string, ...any)) {
	switch {
	case check == nil && len(s.Params) > 0:
		bad(s.paramsLine, "%s takes no params", s.Stream)
	case check != nil:
		for _, err := range check(s.Params) {
			bad(s.paramLine(err), "%s: %v", s.Stream, err)
		}
	}
}

// level is what readEntry reads: the defaults, a stream or a tenant's
// override of one.
type level int

const (
	levelDefaults level = iota
	levelStream
	levelTenant
)

// tenantKeys are the settings a tenant's override may change; the others
// are the stream's.
var tenantKeys = []string{"schedule", "enabled", "timeout", "lookback", "params"}

// streamKeys are the settings only a stream has.
var streamKeys = []string{"window", "jitter", "catchup", "tenants", "per_tenant", "reconcile", "reconcile_lookback"}

// readEntry reads the keys of one stream, its defaults or a tenant's
// override into s.
func readEntry(n *yaml.Node, s *Schedule, bad func(int, string, ...any), lvl level) {
	if n.Kind != yaml.MappingNode {
		bad(n.Line, "want a mapping of settings")
		return
	}
	duration := func(v *yaml.Node, key string, dst *time.Duration) {
		d, err := ParseDuration(v.Value)
		if err != nil || d < 0 {
			bad(v.Line, "%s: %q is not a duration (like 90s, 30m, 24h, 7d)", key, v.Value)
			return
		}
		*dst = d
	}
	for k, v := range pairs(n) {
		if lvl == levelTenant && slices.Contains(streamKeys, k.Value) {
			bad(k.Line, "%s belongs to the stream, not to a tenant (a tenant may change %s)", k.Value, strings.Join(tenantKeys, ", "))
			continue
		}
		switch k.Value {
		case "per_tenant":
			if lvl != levelStream {
				bad(k.Line, "per_tenant belongs to a stream")
			} // ParseLayers reads it
		case "schedule":
			if lvl == levelDefaults {
				bad(k.Line, "schedule belongs to a stream, not to defaults")
			}
			s.Spec, s.specLine = v.Value, v.Line
		case "reconcile":
			if lvl == levelDefaults {
				bad(k.Line, "reconcile belongs to a stream, not to defaults")
			}
			// "off" turns off a built-in reconciliation.
			s.Reconcile, s.reconcileLine = v.Value, v.Line
			if v.Value == "off" {
				s.Reconcile = ""
			}
		case "reconcile_lookback":
			duration(v, k.Value, &s.ReconcileLookback)
		case "window":
			duration(v, k.Value, &s.Window)
		case "lookback":
			duration(v, k.Value, &s.Lookback)
		case "timeout":
			duration(v, k.Value, &s.Timeout)
		case "jitter":
			duration(v, k.Value, &s.Jitter)
		case "enabled", "catchup":
			b, err := strconv.ParseBool(v.Value)
			if err != nil {
				bad(v.Line, "%s: %q is not true or false", k.Value, v.Value)
			}
			if k.Value == "enabled" {
				s.Enabled = b
			} else {
				s.Catchup = b
			}
		case "tenants":
			s.Tenants = nil
			if v.Kind != yaml.SequenceNode {
				bad(v.Line, "tenants: want a list")
				continue
			}
			for _, t := range v.Content {
				s.Tenants = append(s.Tenants, t.Value)
			}
		case "params":
			if lvl == levelDefaults {
				bad(k.Line, "params belong to a stream, not to defaults")
			}
			// A later layer's params override an earlier one's key by key.
			s.Params, s.paramsLine, s.paramLines = maps.Clone(s.Params), k.Line, map[string]int{}
			if s.Params == nil {
				s.Params = map[string]string{}
			}
			for pk, pv := range pairs(v) {
				s.paramLines[pk.Value] = pk.Line
				if pv.Kind == yaml.SequenceNode {
					var items []string
					for _, it := range pv.Content {
						items = append(items, it.Value)
					}
					s.Params[pk.Value] = strings.Join(items, ",")
					continue
				}
				s.Params[pk.Value] = pv.Value
			}
		default:
			bad(k.Line, "unknown setting %q (schedule, window, lookback, timeout, jitter, enabled, catchup, tenants, params, per_tenant, reconcile, reconcile_lookback)", k.Value)
		}
	}
	if s.Window <= 0 {
		bad(n.Line, "window must be positive")
	}
	if s.Timeout <= 0 {
		bad(n.Line, "timeout must be positive")
	}
}

// paramLine is the line of the parameter a check's error names ("months:
// ..."), or else of the params key.
func (s Schedule) paramLine(err error) int {
	if name, _, ok := strings.Cut(err.Error(), ":"); ok {
		if line, ok := s.paramLines[name]; ok {
			return line
		}
	}
	return s.paramsLine
}

// yamlError puts a YAML syntax error ("yaml: line 3: ...") in file:line form.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if line, cerr := strconv.Atoi(n); cerr == nil {
				return fmt.Errorf("%s:%d: %s", file, line, after)
			}
		}
	}
	return fmt.Errorf("%s:1: %s", file, msg)
}

// pairs iterates the key/value nodes of a mapping (none for other nodes).
func pairs(n *yaml.Node) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

// ParseDuration is time.ParseDuration plus whole days ("7d"), as the
// schedules file and `finsync backfill -window` take durations.
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		return time.Duration(n) * 24 * time.Hour, err
	}
	return time.ParseDuration(s)
}
