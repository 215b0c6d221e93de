package fimento

import "strings"

// categories maps Fimento's transaction categories to the common taxonomy
// of fino's categories.csv (transactions.category); the original stays in
// provider_category. The docs show only "income"; the rest are the
// categories a Swedish categoriser plausibly uses, matched
// case-insensitively, and anything else is "other" (doc.go 21). A test
// checks every target against fino's taxonomy.
var categories = map[string]string{
	"income":        "income",
	"salary":        "salary",
	"pension":       "pension",
	"child_benefit": "child_benefit",
	"housing":       "housing",
	"rent":          "rent",
	"utilities":     "utilities",
	"groceries":     "groceries",
	"food":          "groceries",
	"restaurants":   "restaurants",
	"shopping":      "shopping",
	"transport":     "transport",
	"car":           "car",
	"travel":        "travel",
	"entertainment": "leisure",
	"leisure":       "leisure",
	"subscriptions": "subscriptions",
	"insurance":     "insurance",
	"health":        "health",
	"education":     "education",
	"loans":         "credit",
	"loan":          "credit",
	"credit":        "credit",
	"savings":       "savings_investments",
	"investments":   "savings_investments",
	"cash":          "cash",
	"fees":          "fees",
	"taxes":         "taxes",
	"transfers":     "transfers",
	"transfer":      "transfers",
	"gambling":      "gambling",
}

// commonCategory is the common category of a Fimento category.
func commonCategory(c string) string {
	if cat, ok := categories[strings.ToLower(strings.TrimSpace(c))]; ok {
		return cat
	}
	return "other"
}
