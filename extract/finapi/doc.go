// Package finapi extracts finAPI Financial Segments (docs: the "Introduction
// to Financial Segments" and "Getting Started" pages) into segment_members:
// one stream per segment type (finapi.segments.high_balance, .low_balance,
// .income_spending, .insurance_spending, .financial_breakdown), one run per
// mandator (tenant).
//
// A run resumes the stream's active job from etl_state, or creates one with
// POST /segments/{segmentType} and records its jobId before anything else;
// then it polls GET /segments/{segmentType}/{jobId} (404 = not ready, 400 =
// job not found: the job is marked lost and the next run creates a new one),
// pages through the result and loads one row per qualifying account. The
// job is marked done only after its rows were loaded. finAPI deletes a
// segment 14 days after its creation: every row carries expires_on, a job
// past that age is marked expired without asking, and the view
// current_segment_members hides expired rows (load/clickhouse
// DeleteExpiredSegments removes them).
//
// The sandbox (package finapi/sandbox) serves the same endpoints over a
// synthetic ledger and computes each segment by its documented definition,
// so tests compare what lands with an independent computation over the
// ledger.
//
// # Assumptions where the docs are silent
//
// The sandbox and the extractor share every one of these; a real API that
// differs is a fix in both.
//
//  1. Auth: OAuth client credentials per mandator, POST form
//     grant_type=client_credentials, client_id, client_secret to the token
//     URL (default BaseURL + /oauth/token, configurable because finAPI's
//     Access API serves tokens on another host), answer access_token and
//     expires_in (seconds). A 401 fetches a new token once.
//  2. Segment type path names: highBalance (documented), lowBalance,
//     incomeSpendingSummary, insuranceSpending, financialBreakdown.
//  3. Paging: number starts at 0 (Spring Data), size is users per page
//     (default 500), but a server may serve fewer than asked, so a short
//     page is not the last. A run reads on while it has fewer users than
//     totalElements or fewer pages than totalPages; with neither (the
//     Getting Started example omits totalPages), until a page comes back
//     empty, one request more. An empty page ends the paging whatever the
//     totals say. totalElements counts users: another count at the end ends
//     the run partial, its rows loaded and the job left active, so the next
//     run reads the same job again (the reload replaces the rows) until it
//     adds up or the job expires (finsync_inconsistent_results_total with
//     check total_elements counts such runs). A page with the same users
//     as the one before (a server ignoring number) or more than
//     Config.MaxPages pages (default 100,000) fail the run, the job left
//     active.
//  4. Balance segments take accountType among checking, savings,
//     creditCard, loan, security, membership, bausparen; threshold is a
//     decimal in the account currency.
//  5. lowBalance body: accountType (default checking), threshold,
//     numberOfMonths (the past complete months checked).
//  6. incomeSpendingSummary body: dateFrom, dateTo (inclusive dates); the
//     stream asks for its configured number of past complete months.
//  7. financialBreakdown body: labelGroups (SALARY, PENSION, CHILD_BENEFIT,
//     OTHER_INCOME, RENT, INSURANCES, INVESTMENTS, LOANS, UTILITIES,
//     GROCERIES, MOBILITY, LEISURE; the docs name SALARY and INVESTMENTS),
//     numberOfMonths ≤ 12. insuranceSpending has no parameters.
//  8. Result accounts always carry accountId and amount. amount is: the
//     balance on the creation day (highBalance); the lowest end-of-day
//     balance over the months checked (lowBalance); incoming plus outgoing
//     (incomeSpendingSummary); the sum of insurance payments over the last 12
//     complete months, negative (insuranceSpending); the sum of the groups'
//     totals (financialBreakdown). Amounts are signed, money out negative.
//  9. lowBalance accounts add monthlyMinimum [{month "YYYY-MM", amount}].
//  10. incomeSpendingSummary accounts add incomingCount, outgoingCount,
//     incomingAmount, outgoingAmount.
//  11. insuranceSpending accounts add insurances [{provider, insuranceType,
//     amount (per payment), frequency MONTHLY|QUARTERLY|YEARLY}].
//  12. financialBreakdown accounts add breakdowns [{labelGroup, total,
//     average, min, max, median, stdDev, monthly [{month, amount}]}] over
//     the complete months of the period (a month without bookings counts as
//     0); average, median and the population standard deviation are rounded
//     to cents half away from zero.
//  13. Callback: finAPI POSTs JSON {"jobId", "segmentType"} to callbackURL;
//     no signature is documented, so the receiver treats it as a hint and
//     trusts only the GET. The callbackURL carries the tenant as a query
//     parameter. Only a callback for a job active in etl_state for that
//     stream and tenant starts a run, and that run (Request.Triggered) only
//     resumes jobs: a callback never creates (or bills) one.
//  14. durationInMonth is the months the segment looked at (lowBalance and
//     financialBreakdown: numberOfMonths; incomeSpendingSummary: the months
//     of the range; insuranceSpending: 12) and absent for highBalance.
//  15. creationDate is the day the job was created; expires_on =
//     creationDate + 14 days, and a member is current through expires_on.
//     A page whose creationDate is more than a day from the day finsync
//     created the job (a day allows for time zones), or whose rows would be
//     expired already, is not loaded: the run fails (waiting does not fix
//     it, and failed is what alerts), etl_runs.error names both dates, and
//     finsync_inconsistent_results_total{check="result_date"} counts it.
//     The job stays active, so the next run reads it again instead of
//     creating (and paying for) another; 14 days after finsync created it,
//     it is marked expired and the run after creates a new one. Who wants a
//     new one sooner marks the job lost in etl_state.
//
// Landing: the type-specific fields go to segment_members.metrics as
// compact JSON with sorted keys (every account field but accountId and
// amount), the request parameters (without the callback URL) to params. raw
// is the user element with only the row's account in accounts: the user's
// fields (userId and any finAPI adds, such as a segmentVersion) with sorted
// keys, the account as received, all compact. A row thus keeps fields no
// column holds, at the user and the account level, and stays as large as
// one user and one account, however many accounts the user has (a user
// without accounts: its element). The docs name no personal data in
// segment results (user and account ids are opaque UUIDs).
package finapi
