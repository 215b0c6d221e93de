package main

import (
	"context"
	"flag"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
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
	if err := writeReport(ctx, db, out); err != nil {
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

// writeReport renders the report of db's warehouse into path.
func writeReport(ctx context.Context, db *clickhouse.DB, path string) error {
	r := report{Database: db.Database(), Generated: time.Now().UTC().Format(time.RFC1123)}
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
		if err := q(query, func(row []string) { r.Tables = append(r.Tables, row) }); err != nil {
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
		r.Cashflow = append(r.Cashflow, currencyChart{c.name, barChart("cashflow-"+c.id(), c.name, months,
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
		r.Balances = append(r.Balances, currencyChart{c.name, lineChart("balances-"+c.id(), c.name, days, balances, "#0969da")})
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
	r.Segments = barChart("segments", "users", segs, []series{{"users", "#8250df", members}})
	err = q(`SELECT stream, last_success, lag_seconds, last_status, rows_24h, rejects_24h
		FROM v_pipeline_freshness ORDER BY stream`, func(row []string) { r.Freshness = append(r.Freshness, row) })
	if err != nil {
		return err
	}
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
	Tables, Freshness   [][]string
	Cashflow, Balances  []currencyChart
	Segments            template.HTML
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

type series struct {
	name, color string
	values      []float64
}

func number(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

const chartW, chartH, chartPad = 860.0, 200.0, 40.0

// barChart draws grouped bars as inline SVG; unit names what they count.
func barChart(id, unit string, labels []string, ss []series) template.HTML {
	most := 1.0
	for _, s := range ss {
		for _, v := range s.values {
			most = math.Max(most, v)
		}
	}
	svg := fmt.Sprintf(`<svg id="%s" width="%.0f" height="%.0f" role="img">`, template.HTMLEscapeString(id), chartW, chartH+chartPad)
	slot := (chartW - chartPad) / math.Max(1, float64(len(labels)))
	bw := slot * 0.8 / float64(len(ss))
	for i, l := range labels {
		x0 := chartPad + float64(i)*slot
		for j, s := range ss {
			h := s.values[i] / most * (chartH - 20)
			svg += fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.2f</title></rect>`,
				x0+float64(j)*bw, chartH-h, bw, h, s.color, template.HTMLEscapeString(l), s.name, s.values[i])
		}
		svg += fmt.Sprintf(`<text x="%.1f" y="%.0f" font-size="10" text-anchor="middle">%s</text>`, x0+slot*0.4, chartH+14, template.HTMLEscapeString(l))
	}
	svg += fmt.Sprintf(`<text x="0" y="12" font-size="10">max %.0f %s</text>`, most, template.HTMLEscapeString(unit))
	for j, s := range ss {
		svg += fmt.Sprintf(`<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f" font-size="11">%s</text>`,
			chartW-160+float64(j)*80, chartH+24, s.color, chartW-146+float64(j)*80, chartH+33, s.name)
	}
	return template.HTML(svg + `</svg>`)
}

// lineChart draws one series over time as inline SVG; unit names what it
// measures.
func lineChart(id, unit string, labels []string, values []float64, color string) template.HTML {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi <= lo {
		hi = lo + 1
	}
	svg := fmt.Sprintf(`<svg id="%s" width="%.0f" height="%.0f" role="img"><polyline fill="none" stroke="%s" stroke-width="3" points="`,
		template.HTMLEscapeString(id), chartW, chartH+chartPad, color)
	step := (chartW - chartPad) / math.Max(1, float64(len(values)-1))
	for i, v := range values {
		svg += fmt.Sprintf("%.1f,%.1f ", chartPad+float64(i)*step, chartH-(v-lo)/(hi-lo)*(chartH-20))
	}
	svg += `"/>`
	if len(labels) > 0 {
		svg += fmt.Sprintf(`<text x="%.0f" y="%.0f" font-size="10">%s</text><text x="%.0f" y="%.0f" font-size="10" text-anchor="end">%s</text>`,
			chartPad, chartH+14, labels[0], chartW, chartH+14, labels[len(labels)-1])
	}
	svg += fmt.Sprintf(`<text x="0" y="12" font-size="10">%.0f %s</text><text x="0" y="%.0f" font-size="10">%.0f</text>`,
		hi, template.HTMLEscapeString(unit), chartH, lo)
	return template.HTML(svg + `</svg>`)
}

var reportTemplate = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>finsync report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:920px}
table{border-collapse:collapse;margin-bottom:1.5em}th,td{text-align:left;padding:.3em .7em;border-bottom:1px solid #ddd}
th{background:#f4f4f4}td.n{text-align:right}h2{margin-top:1.6em}.muted{color:#888}
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
<table><tr><th>stream</th><th>last success</th><th>lag (s)</th><th>last status</th><th>rows 24 h</th><th>rejects 24 h</th></tr>
{{range .Freshness}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
<h2>Tables (rows after deduplication)</h2>
<table><tr><th>table</th><th>provider</th><th>rows</th></tr>
{{range .Tables}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td><td class="n">{{index . 2}}</td></tr>{{end}}</table>
</body></html>
`))
