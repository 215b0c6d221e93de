package extract

import (
	"context"
	"fmt"
)

// Pages calls fetch for page start, start+1, ... until it reports no more
// pages or fails. Where numbering starts is the provider's business (finAPI
// and Spring count from 0, Fimento from 1), so the caller says.
func Pages(ctx context.Context, start int, fetch func(ctx context.Context, page int) (more bool, err error)) error {
	for page := start; ; page++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		more, err := fetch(ctx, page)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		if !more {
			return nil
		}
	}
}

// Page is what one page said of the paging: how many elements it held and
// the totals it announced (0: not sent), at Size elements a page.
type Page struct {
	Elements, TotalPages, TotalElements, Size int
}

// MorePages says whether to read the page after the read-th (counting
// from 1), so that paging ends whatever the totals claim: at the first
// empty page, at totalPages, and at the pages totalElements fills (one
// more allowed for an element added meanwhile). contradiction, when not
// empty, says totalPages announced more than totalElements fills, for the
// caller to record: a provider claiming a billion pages over empty ones
// would otherwise be paged until the run's timeout.
func MorePages(read int, p Page) (more bool, contradiction string) {
	if p.Elements == 0 {
		return false, ""
	}
	last := p.TotalPages
	if p.TotalElements > 0 && p.Size > 0 {
		if fill := (p.TotalElements+p.Size-1)/p.Size + 1; last > fill {
			contradiction = fmt.Sprintf("totalPages %d contradicts totalElements %d at %d a page: paging stops at page %d at the latest",
				p.TotalPages, p.TotalElements, p.Size, fill)
			last = fill
		}
	}
	return read < last, contradiction
}
