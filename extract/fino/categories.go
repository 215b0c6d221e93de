package fino

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
)

// The mapping from finoOS tags and contract categories to the common
// taxonomy is data, not code: categories.csv says what maps where and why.
//
//go:embed categories.csv
var categoriesCSV []byte

// isCommonCategory reports whether c belongs to the common taxonomy of the
// category columns. The CSV is checked against it, so a typo there fails the
// tests instead of inventing a category BI users never filter on.
func isCommonCategory(c string) bool {
	switch c {
	case "income", "salary", "pension", "child_benefit",
		"rent", "housing", "utilities",
		"groceries", "restaurants", "shopping",
		"transport", "car", "travel", "leisure", "subscriptions",
		"insurance", "health", "education",
		"credit", "savings_investments", "cash", "fees", "taxes",
		"transfers", "gambling", "other":
		return true
	}
	return false
}

// categoryOther is what a value without a mapping becomes.
const categoryOther = "other"

// categories maps finoOS values to the common taxonomy. It is built once per
// builder and never changed, so builders share nothing mutable.
type categories struct {
	tags      map[string]string // categorization tag → common category
	contracts map[string]string // contract category → common category
}

// newCategories parses the embedded mapping. The file is part of the
// binary and a test parses it, so a broken one is a programming error.
func newCategories() categories {
	c, err := parseCategories(categoriesCSV)
	if err != nil {
		panic("fino: categories.csv: " + err.Error())
	}
	return c
}

// parseCategories reads "kind,fino,category" rows (with a header and
// #-comments), refusing unknown kinds, categories outside the taxonomy and
// a value mapped twice.
func parseCategories(data []byte) (categories, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = 3
	header, err := r.Read()
	if err != nil {
		return categories{}, fmt.Errorf("header: %w", err)
	}
	if header[0] != "kind" || header[1] != "fino" || header[2] != "category" {
		return categories{}, fmt.Errorf("header %q, want kind,fino,category", header)
	}
	c := categories{tags: map[string]string{}, contracts: map[string]string{}}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		if err != nil {
			return categories{}, err
		}
		line, _ := r.FieldPos(0)
		kind, value, category := rec[0], rec[1], rec[2]
		var m map[string]string
		switch kind {
		case "tag":
			m = c.tags
		case "contract":
			m = c.contracts
		default:
			return categories{}, fmt.Errorf("line %d: kind %q, want tag or contract", line, kind)
		}
		switch {
		case value == "":
			return categories{}, fmt.Errorf("line %d: empty %s", line, kind)
		case !isCommonCategory(category):
			return categories{}, fmt.Errorf("line %d: %q is not a common category", line, category)
		case m[value] != "":
			return categories{}, fmt.Errorf("line %d: %s %q mapped twice", line, kind, value)
		}
		m[value] = category
	}
}

// forTags resolves a categorization: its descriptiveTag if mapped, else the
// first mapped tag of tags (finoOS lists them most specific first), else
// "other". A new specific tag thus still lands under its mapped parent.
func (c categories) forTags(descriptive string, tags []string) string {
	if cat, ok := c.tags[descriptive]; ok {
		return cat
	}
	for _, t := range tags {
		if cat, ok := c.tags[t]; ok {
			return cat
		}
	}
	return categoryOther
}

// forContract resolves a contract category, "other" if unmapped.
func (c categories) forContract(category string) string {
	if cat, ok := c.contracts[category]; ok {
		return cat
	}
	return categoryOther
}
