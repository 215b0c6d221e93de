package schedules

import (
	"context"
	"log/slog"
)

type runKey struct{}

// WithRun marks ctx as belonging to a run: a logger whose handler is
// wrapped by RunHandler adds stream, tenant and run id to every line logged
// with that ctx, in the runner and in the extractors' HTTP clients alike.
func WithRun(ctx context.Context, stream, tenant, runID string) context.Context {
	return context.WithValue(ctx, runKey{}, []slog.Attr{slog.String("stream", stream), slog.String("tenant", tenant), slog.String("run", runID)})
}

// RunHandler wraps h so that records logged with a WithRun context carry
// the run's attributes.
func RunHandler(h slog.Handler) slog.Handler { return runHandler{h} }

type runHandler struct{ slog.Handler }

func (h runHandler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, ok := ctx.Value(runKey{}).([]slog.Attr); ok {
		r.AddAttrs(attrs...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h runHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return runHandler{h.Handler.WithAttrs(attrs)}
}

func (h runHandler) WithGroup(name string) slog.Handler { return runHandler{h.Handler.WithGroup(name)} }
