package extract

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
)

// MaxWebhookBody is the largest webhook body a provider's receiver reads.
const MaxWebhookBody = 1 << 20

// ReadWebhookBody reads a webhook's body, at most MaxWebhookBody bytes, of
// a request with one of methods. When it cannot, status is what the
// receiver answers (405 with Allow set for another method, 413 for a larger
// body, else 400) and reason says why without quoting the body, which may
// hold personal data; status is 0 when body was read.
func ReadWebhookBody(w http.ResponseWriter, r *http.Request, methods ...string) (body []byte, status int, reason string) {
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		return nil, http.StatusMethodNotAllowed, "method not allowed"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, http.StatusRequestEntityTooLarge, "body larger than 1 MiB"
		}
		return nil, http.StatusBadRequest, "reading the body failed"
	}
	return body, 0, ""
}
