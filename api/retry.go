package api

import (
	"errors"
	"net/http"

	"github.com/hookrelay/hookrelay/deliver"
)

// retryDelivery replays a finished delivery (delivered, failed or skipped):
// it becomes pending with one more attempt and goes back on the stream. It
// answers 202 with the delivery, 404 when the project has no such webhook
// (a deleted one included, as the list says) or the webhook no such
// delivery, and 409 when the delivery is still pending.
func (a *app) retryDelivery(w http.ResponseWriter, r *http.Request) error {
	project, webhookID, deliveryID, err := deliveryPath(r)
	if err != nil {
		return err
	}
	err = deliver.Replay(r.Context(), a.pool, a.rdb, deliver.Streams{Base: a.cfg.Stream, N: a.cfg.Shards}, project, webhookID, deliveryID)
	switch {
	case errors.Is(err, deliver.ErrWebhookNotFound):
		return notFound("webhook")
	case errors.Is(err, deliver.ErrNotFound):
		return notFound("delivery")
	case errors.Is(err, deliver.ErrNotReplayable):
		return &apiError{Status: http.StatusConflict, Code: codeNotReplayable,
			Message: "delivery_id: the delivery is still pending; only delivered, failed or skipped deliveries can be retried"}
	}
	d, loadErr := a.loadDelivery(r.Context(), project, webhookID, deliveryID, false)
	if loadErr != nil {
		return errors.Join(err, loadErr)
	}
	if err != nil {
		if d.Status != "pending" {
			return err
		}
		// The replay committed but could not reach Redis: the reconciler puts
		// the delivery back on the stream, so the request is accepted.
		a.log.WarnContext(r.Context(), "replayed delivery not yet on the stream", "delivery_id", deliveryID, "err", err)
	}
	writeJSON(w, http.StatusAccepted, d)
	return nil
}
