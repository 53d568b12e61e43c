package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

// An API server: create a webhook (its secret is shown once), then deploy a
// config, which emits config.deployed in the deploying transaction.
func ExampleNew() {
	ctx := context.Background()
	db, err := testdb.Create(ctx) // your migrated database
	if err != nil {
		log.Fatal(err)
	}
	defer db.Drop()
	rdb, err := testredis.Dial(ctx) // your Redis client
	if err != nil {
		log.Fatal(err)
	}
	defer rdb.Close()

	h := api.New(api.Config{
		EventTypes:  api.DefaultEventTypes(),
		SecretGrace: api.DefaultSecretGrace,
		Stream:      "queues:webhooks",
	}, db.Pool, rdb, nil, nil)
	srv := httptest.NewServer(h) // or any http.Server
	defer srv.Close()

	base := srv.URL + "/api/projects/9a1c6a52-6f7e-4d8e-8d3f-3c9f1f0e2b11"
	post := func(path, body string) map[string]any {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		fmt.Println(resp.StatusCode)
		return out
	}

	hook := post("/webhooks", `{"name": "deploys", "url": "https://hooks.example.com/in", "event_types": ["config.deployed"]}`)
	fmt.Println(strings.HasPrefix(hook["secret"].(string), "whsec_"))

	deployed := post("/configs/deploy", `{
		"application_id": "0b5e3c1e-41a4-4b8e-9f0e-2f3a7c9d1e21", "application_slug": "support-bot",
		"variant_id": "5d0c2f4e-8a7b-4c3d-9e1f-0a2b3c4d5e6f", "variant_slug": "default",
		"params": {"temperature": 0.2}, "environment": "production", "deployed_by": "ana"}`)
	fmt.Println(deployed["version"], deployed["environment"])

	var typ string
	if err := db.Pool.QueryRow(ctx, `SELECT event_type FROM hookrelay.outbox WHERE id = $1`, deployed["event_id"]).Scan(&typ); err != nil {
		log.Fatal(err)
	}
	fmt.Println(typ)
	// Output:
	// 201
	// true
	// 201
	// 1 production
	// config.deployed
}
