package main

import (
	"context"
	"flag"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/transform"
)

// runReport is `finsync report`: one self-contained HTML file (no external
// assets) a person can open: tables and rows per provider, monthly cash
// flow and balance trend (one chart per currency), segment sizes, pipeline
// freshness.
func runReport(ctx context.Context, a *app, args []string) error {
	var out string
	err := a.flags("report", summaryOf("report"), args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", ".finsync/out/report.html", "where to write the report")
	})
	if err != nil {
		return err
	}
	c, err := a.config(ctx)
	if err != nil {
		return err
	}
	db, err := clickhouse.Open(ctx, a.dbOptions(c))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := writeReport(ctx, db, out, c.sched); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "report written to %s\n", out)
	return nil
}

// cashflowQuery is the report's monthly cash flow: income and spending of
// every user over the last 12 months, per currency (money is never added
// across currencies: one chart each), as Grafana's cash flow panel shows
// them.
const cashflowQuery = `SELECT currency, toString(month), toString(sum(income)), toString(sum(spending)) FROM v_monthly_cashflow
	WHERE month >= addMonths(toStartOfMonth(today()), -11) GROUP BY currency, month ORDER BY currency, month`

// balanceTrendQuery is the report's balance trend: the daily balances of
// every provider's accounts added up per currency (Fimento's are per
// process, account "*"), as Grafana's balance panel shows them.
const balanceTrendQuery = `SELECT currency, toString(balance_date), toString(sum(balance)) FROM v_account_balance_daily
	WHERE balance_date >= today() - 180 GROUP BY currency, balance_date ORDER BY currency, balance_date`

// writeReport renders the report of db's warehouse into path; sched (nil:
// none) judges which streams are stale.
func writeReport(ctx context.Context, db *clickhouse.DB, path string, sched *schedules.Schedules) error {
	now := time.Now().UTC()
	r := report{Database: db.Database(), Generated: now.Format(time.RFC1123)}
	q := func(query string, fn func(row []string)) error {
		rows, err := db.Conn().Query(ctx, query)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			row, err := scanStrings(rows)
			if err != nil {
				return err
			}
			fn(row)
		}
		return rows.Err()
	}
	for _, t := range transform.Tables() {
		query := "SELECT '" + t.Name + "', '', toString(count()) FROM " + t.Name + " FINAL"
		if _, ok := t.Schema.FieldsByName("provider"); ok {
			query = "SELECT '" + t.Name + "', provider, toString(count()) FROM " + t.Name + " FINAL GROUP BY provider ORDER BY provider"
		}
		if err := q(query, func(row []string) {
			r.Tables = append(r.Tables, []string{row[0], row[1], thousands(number(row[2]), 0)})
		}); err != nil {
			return err
		}
	}
	var cashflow, trend [][]string
	if err := q(cashflowQuery, func(row []string) { cashflow = append(cashflow, row) }); err != nil {
		return err
	}
	for _, c := range byCurrency(cashflow) {
		var months []string
		var income, spending []float64
		for _, row := range c.rows {
			months = append(months, row[0][:7])
			income = append(income, number(row[1]))
			spending = append(spending, -number(row[2]))
		}
		// The month under way is partial: marked, not read as a drop.
		r.Cashflow = append(r.Cashflow, currencyChart{c.name, barChart("cashflow-"+c.id(), c.unit(), 2, months, now.Format("2006-01"),
			[]series{{"income", "#2da44e", income}, {"spending", "#cf222e", spending}})})
	}
	if err := q(balanceTrendQuery, func(row []string) { trend = append(trend, row) }); err != nil {
		return err
	}
	for _, c := range byCurrency(trend) {
		var days []string
		var balances []float64
		for _, row := range c.rows {
			days = append(days, row[0])
			balances = append(balances, number(row[1]))
		}
		r.Balances = append(r.Balances, currencyChart{c.name, lineChart("balances-"+c.id(), c.unit(), 2, days, balances, "#0969da")})
	}
	var segs []string
	var members []float64
	err := q(`SELECT segment_type, toString(count()) FROM v_segment_members_current
		GROUP BY segment_type ORDER BY segment_type`, func(row []string) {
		segs = append(segs, row[0])
		members = append(members, number(row[1]))
	})
	if err != nil {
		return err
	}
	r.Segments = barChart("segments", "users", 0, segs, "", []series{{"users", "#8250df", members}})
	err = q(`SELECT stream, last_success, lag_seconds, last_status, rows_24h, rejects_24h
		FROM v_pipeline_freshness ORDER BY stream`, func(row []string) { r.Freshness = append(r.Freshness, freshnessRow(row, sched, now)) })
	if err != nil {
		return err
	}
	// Stalest first: never succeeded, then the longest since a success.
	sort.SliceStable(r.Freshness, func(i, k int) bool { return r.Freshness[i].lag > r.Freshness[k].lag })
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := reportTemplate.Execute(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type report struct {
	Database, Generated string
	Tables              [][]string
	Freshness           []freshRow
	Cashflow, Balances  []currencyChart
	Segments            template.HTML
}

// freshRow is a stream's line of v_pipeline_freshness, judged as the
// status page judges it (health).
type freshRow struct {
	Stream, LastSuccess, Lag, LastStatus, Rows24h, Rejects24h string
	Health                                                    string
	lag                                                       time.Duration // since the last success; the longest for never
}

func freshnessRow(row []string, sched *schedules.Schedules, now time.Time) freshRow {
	f := freshRow{Stream: row[0], LastSuccess: "never", Lag: "—", LastStatus: row[3],
		Rows24h: thousands(number(row[4]), 0), Rejects24h: thousands(number(row[5]), 0), lag: time.Duration(math.MaxInt64)}
	var success time.Time
	for _, layout := range []string{time.DateTime, time.DateOnly} {
		if t, err := time.Parse(layout, row[1]); err == nil && t.Year() > 1970 {
			success = t
			f.LastSuccess, f.lag = t.Format("2006-01-02 15:04"), now.Sub(t)
			f.Lag = strings.TrimSuffix(ago(f.lag), " ago")
		}
	}
	var s schedules.Schedule // none known: never stale
	if sched != nil {
		s, _ = sched.Find(f.Stream)
	}
	f.Health = health(s, &clickhouse.Run{Status: f.LastStatus}, success, now, false)
	return f
}

// currencyChart is one currency's chart of money.
type currencyChart struct {
	Currency string
	Chart    template.HTML
}

// currencyRows are the rows of one currency, without their currency.
type currencyRows struct {
	name string // the currency, or "no currency" for rows whose provider named none
	rows [][]string
}

// byCurrency splits rows ordered by their first cell, the currency.
func byCurrency(rows [][]string) []currencyRows {
	var out []currencyRows
	for i, row := range rows {
		if i == 0 || row[0] != rows[i-1][0] {
			name := row[0]
			if name == "" {
				name = "no currency"
			}
			out = append(out, currencyRows{name: name})
		}
		out[len(out)-1].rows = append(out[len(out)-1].rows, row[1:])
	}
	return out
}

// id is the currency as a part of an HTML id.
func (c currencyRows) id() string { return strings.ReplaceAll(c.name, " ", "-") }

// unit is what the currency's amounts are written with: its code.
func (c currencyRows) unit() string {
	if c.name == "no currency" {
		return ""
	}
	return c.name
}

type series struct {
	name, color string
	values      []float64
}

func number(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// thousands writes v with places decimals and a comma between thousands:
// 12,345.67.
func thousands(v float64, places int) string {
	text := strconv.FormatFloat(math.Abs(v), 'f', places, 64)
	whole, frac, _ := strings.Cut(text, ".")
	var b strings.Builder
	if v < 0 && strings.Trim(text, "0.") != "" {
		b.WriteByte('-')
	}
	for i, d := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// amount is v with its unit: "12,345.67 EUR", "1,204 users".
func amount(v float64, places int, unit string) string {
	if unit == "" {
		return thousands(v, places)
	}
	return thousands(v, places) + " " + unit
}

// ticks are about n round values (steps of 1, 2 or 5 times a power of ten,
// none finer than places decimals) spanning lo..hi, and the decimals their
// labels need.
func ticks(lo, hi float64, n, places int) ([]float64, int) {
	if hi <= lo {
		hi = lo + 1
	}
	raw := math.Max((hi-lo)/float64(n), math.Pow(10, -float64(places)))
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag * 10
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	dec := max(0, int(-math.Floor(math.Log10(step))))
	scale := math.Pow(10, float64(dec))
	var out []float64
	for k := math.Floor(lo / step); k*step < hi+step*0.999; k++ {
		out = append(out, math.Round(k*step*scale)/scale)
	}
	return out, dec
}

// The plot area of a chart: left of it the y labels, below it the x
// labels and the legend.
const chartW, chartH, plotLeft, plotRight, plotTop, plotBottom = 860.0, 260.0, 96.0, 850.0, 10.0, 200.0

// yAxis draws the horizontal gridlines at the ticks with their labels
// and returns where a value lands.
func yAxis(lo, hi float64, places int, unit string) (string, func(float64) float64) {
	ts, dec := ticks(lo, hi, 5, places)
	lo, hi = math.Min(lo, ts[0]), math.Max(hi, ts[len(ts)-1])
	y := func(v float64) float64 { return plotBottom - (v-lo)/(hi-lo)*(plotBottom-plotTop) }
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, `<line class="grid" x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/><text class="tick" x="%.0f" y="%.1f" font-size="10" text-anchor="end" fill="#555">%s</text>`,
			plotLeft, plotRight, y(t), y(t), plotLeft-6, y(t)+3, template.HTMLEscapeString(amount(t, min(dec, places), unit)))
	}
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#888"/>`, plotLeft, plotLeft, plotTop, plotBottom)
	return b.String(), y
}

// barChart draws grouped bars as inline SVG over a y axis of unit with
// places decimals; the bars of label partial (a period under way) are
// hatched and its label says so.
func barChart(id, unit string, places int, labels []string, partial string, ss []series) template.HTML {
	most := 0.0
	for _, s := range ss {
		for _, v := range s.values {
			most = math.Max(most, v)
		}
	}
	grid, y := yAxis(0, math.Max(most, 1), places, unit)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" width="%.0f" height="%.0f" role="img"><defs>`, template.HTMLEscapeString(id), chartW, chartH)
	for j, s := range ss {
		fmt.Fprintf(&b, `<pattern id="%s-hatch-%d" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="%s" fill-opacity=".3"/><line x1="0" y1="0" x2="0" y2="6" stroke="%s" stroke-width="3"/></pattern>`,
			template.HTMLEscapeString(id), j, s.color, s.color)
	}
	b.WriteString(`</defs>` + grid)
	slot := (plotRight - plotLeft) / math.Max(1, float64(len(labels)))
	bw := slot * 0.8 / float64(len(ss))
	for i, l := range labels {
		x0 := plotLeft + float64(i)*slot + slot*0.1
		for j, s := range ss {
			fill, note := s.color, ""
			if l == partial {
				fill, note = fmt.Sprintf("url(#%s-hatch-%d)", template.HTMLEscapeString(id), j), " (partial month, so far)"
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s%s</title></rect>`,
				x0+float64(j)*bw, y(s.values[i]), bw, y(0)-y(s.values[i]), fill, template.HTMLEscapeString(l), s.name,
				template.HTMLEscapeString(amount(s.values[i], places, unit)), note)
		}
		cx := x0 + slot*0.4
		fmt.Fprintf(&b, `<text class="xlabel" x="%.1f" y="%.0f" font-size="10" text-anchor="middle">%s`, cx, plotBottom+14, template.HTMLEscapeString(l))
		if l == partial {
			fmt.Fprintf(&b, `<tspan class="partial" x="%.1f" dy="11" fill="#888">(partial)</tspan>`, cx)
		}
		b.WriteString(`</text>`)
	}
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#888"/>`, plotLeft, plotRight, y(0), y(0))
	for j, s := range ss {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f" font-size="11">%s</text>`,
			plotRight-160+float64(j)*80, chartH-18, s.color, plotRight-146+float64(j)*80, chartH-9, s.name)
	}
	return template.HTML(b.String() + `</svg>`)
}

// lineChart draws one series over time (labels are its days) as inline
// SVG over a y axis of unit with places decimals.
func lineChart(id, unit string, places int, labels []string, values []float64, color string) template.HTML {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if len(values) == 0 {
		lo, hi = 0, 1
	}
	grid, y := yAxis(lo, hi, places, unit)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" width="%.0f" height="%.0f" role="img">%s`, template.HTMLEscapeString(id), chartW, chartH, grid)
	step := (plotRight - plotLeft) / math.Max(1, float64(len(values)-1))
	// About six dates along the x axis, each with its vertical gridline.
	every := max(1, (len(labels)+5)/6)
	for i := 0; i < len(labels); i += every {
		x := plotLeft + float64(i)*step
		anchor := "middle" // the first and last within the chart
		switch {
		case i == 0:
			anchor = "start"
		case x > plotRight-30:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#f0f0f0"/><text class="xlabel" x="%.1f" y="%.0f" font-size="10" text-anchor="%s">%s</text>`,
			x, x, plotTop, plotBottom, x, plotBottom+14, anchor, template.HTMLEscapeString(labels[i]))
	}
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#888"/><polyline fill="none" stroke="%s" stroke-width="3" points="`,
		plotLeft, plotRight, plotBottom, plotBottom, color)
	for i, v := range values {
		fmt.Fprintf(&b, "%.1f,%.1f ", plotLeft+float64(i)*step, y(v))
	}
	b.WriteString(`"/>`)
	if n := len(values); n > 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="10" text-anchor="end">%s: %s</text>`, plotRight, chartH-18,
			template.HTMLEscapeString(labels[n-1]), template.HTMLEscapeString(amount(values[n-1], places, unit)))
	}
	return template.HTML(b.String() + `</svg>`)
}

var reportTemplate = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>finsync report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:920px}
table{border-collapse:collapse;margin-bottom:1.5em}th,td{text-align:left;padding:.3em .7em;border-bottom:1px solid #ddd}
th{background:#f4f4f4}td.n{text-align:right}h2{margin-top:1.6em}.muted{color:#888}
.failing{color:#cf222e;font-weight:600}.stale{color:#9a6700;font-weight:600}.notes{color:#9a6700}.ok{color:#1a7f37}.unknown{color:#6e7781}
tr[data-health=failing]{background:#ffebe9}tr[data-health=stale]{background:#fff8c5}
</style></head><body>
<h1>finsync report</h1>
<p class="muted">database {{.Database}} · generated {{.Generated}}</p>
<h2>Monthly cash flow per currency (all users)</h2>
{{range .Cashflow}}<h3>{{.Currency}}</h3>
{{.Chart}}
{{else}}<p class="muted">no transactions</p>
{{end}}<h2>Balance trend per currency (sum of daily balances over every provider, last 180 days)</h2>
{{range .Balances}}<h3>{{.Currency}}</h3>
{{.Chart}}
{{else}}<p class="muted">no balances</p>
{{end}}
<h2>finAPI segments now (users, all mandators)</h2>
{{.Segments}}
<h2>Pipeline freshness</h2>
<p class="muted">stalest first; stale: no success for two of the stream's periods and its timeout (as on the status page)</p>
<table id="freshness"><tr><th>stream</th><th>status</th><th>last success (UTC)</th><th>since</th><th>last run</th><th>rows 24 h</th><th>rejects 24 h</th></tr>
{{range .Freshness}}<tr class="fresh" data-stream="{{.Stream}}" data-health="{{.Health}}"><td>{{.Stream}}</td><td><span class="{{.Health}}">{{.Health}}</span></td><td>{{.LastSuccess}}</td><td>{{.Lag}}</td><td>{{.LastStatus}}</td><td class="n">{{.Rows24h}}</td><td class="n">{{.Rejects24h}}</td></tr>{{end}}</table>
<h2>Tables (rows after deduplication)</h2>
<table><tr><th>table</th><th>provider</th><th>rows</th></tr>
{{range .Tables}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td><td class="n">{{index . 2}}</td></tr>{{end}}</table>
</body></html>
`))
