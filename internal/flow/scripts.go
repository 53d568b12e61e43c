package flow

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The package's Lua scripts, each one decision on Redis's clock; go-redis
// runs them with EVALSHA, sending the source once per server after a
// NOSCRIPT. Each .lua file says what its KEYS and ARGV are.
var (
	//go:embed reserve.lua
	reserveLua    string
	reserveScript = redis.NewScript(reserveLua)
	//go:embed pause.lua
	pauseLua    string
	pauseScript = redis.NewScript(pauseLua)
	//go:embed acquire.lua
	acquireLua    string
	acquireScript = redis.NewScript(acquireLua)
	//go:embed release.lua
	releaseLua    string
	releaseScript = redis.NewScript(releaseLua)
)
