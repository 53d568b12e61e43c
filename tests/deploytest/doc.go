// Package deploytest checks hookrelay's deployment files — docker-compose.yml,
// Dockerfile and .dockerignore at the repository root — without a Docker
// engine: its tests parse them and assert the structure the design asks for
// (services, commands, environment, health checks, start-up order, a static
// non-root image). It has no code of its own, only tests.
package deploytest
