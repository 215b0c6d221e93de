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
