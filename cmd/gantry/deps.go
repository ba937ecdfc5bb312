package main

import (
	_ "github.com/coder/websocket"
	_ "github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/spf13/cobra"
	_ "go.yaml.in/yaml/v3"
	_ "modernc.org/sqlite"
)

func main() {}
