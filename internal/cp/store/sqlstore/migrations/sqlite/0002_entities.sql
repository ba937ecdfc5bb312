-- Generated from internal/config/schema by the rule in internal/cp/entitystore/ddl.go;
-- regenerate with: go test ./internal/cp/entitystore -run TestMigrationsMatchSchemas -update

CREATE TABLE "certificates" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id)
);

CREATE TABLE "ca_certificates" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_cert_digest" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_cert_digest")
);

CREATE TABLE "snis" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_name" TEXT,
    "certificate_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_name"),
    FOREIGN KEY (group_id, "certificate_id") REFERENCES "certificates" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "snis_certificate" ON "snis" (group_id, "certificate_id");

CREATE TABLE "services" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_name" TEXT,
    "client_certificate_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_name"),
    FOREIGN KEY (group_id, "client_certificate_id") REFERENCES "certificates" (group_id, id) ON DELETE NO ACTION
);
CREATE INDEX "services_client_certificate" ON "services" (group_id, "client_certificate_id");

CREATE TABLE "routes" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_name" TEXT,
    "service_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_name"),
    FOREIGN KEY (group_id, "service_id") REFERENCES "services" (group_id, id) ON DELETE NO ACTION
);
CREATE INDEX "routes_service" ON "routes" (group_id, "service_id");

CREATE TABLE "consumers" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_username" TEXT,
    "u_custom_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_username"),
    UNIQUE (group_id, "u_custom_id")
);

CREATE TABLE "consumer_groups" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_name" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_name")
);

CREATE TABLE "upstreams" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_name" TEXT,
    "client_certificate_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_name"),
    FOREIGN KEY (group_id, "client_certificate_id") REFERENCES "certificates" (group_id, id) ON DELETE NO ACTION
);
CREATE INDEX "upstreams_client_certificate" ON "upstreams" (group_id, "client_certificate_id");

CREATE TABLE "targets" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "ck_0" TEXT NOT NULL,
    "upstream_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "ck_0"),
    FOREIGN KEY (group_id, "upstream_id") REFERENCES "upstreams" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "targets_upstream" ON "targets" (group_id, "upstream_id");

CREATE TABLE "vaults" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_prefix" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_prefix")
);

CREATE TABLE "key_sets" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_name" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_name")
);

CREATE TABLE "keys" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_name" TEXT,
    "ck_0" TEXT NOT NULL,
    "set_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_name"),
    UNIQUE (group_id, "ck_0"),
    FOREIGN KEY (group_id, "set_id") REFERENCES "key_sets" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "keys_set" ON "keys" (group_id, "set_id");

CREATE TABLE "plugins" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_instance_name" TEXT,
    "ck_0" TEXT NOT NULL,
    "route_id" TEXT,
    "service_id" TEXT,
    "consumer_id" TEXT,
    "consumer_group_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_instance_name"),
    UNIQUE (group_id, "ck_0"),
    FOREIGN KEY (group_id, "route_id") REFERENCES "routes" (group_id, id) ON DELETE CASCADE,
    FOREIGN KEY (group_id, "service_id") REFERENCES "services" (group_id, id) ON DELETE CASCADE,
    FOREIGN KEY (group_id, "consumer_id") REFERENCES "consumers" (group_id, id) ON DELETE CASCADE,
    FOREIGN KEY (group_id, "consumer_group_id") REFERENCES "consumer_groups" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "plugins_route" ON "plugins" (group_id, "route_id");
CREATE INDEX "plugins_service" ON "plugins" (group_id, "service_id");
CREATE INDEX "plugins_consumer" ON "plugins" (group_id, "consumer_id");
CREATE INDEX "plugins_consumer_group" ON "plugins" (group_id, "consumer_group_id");

CREATE TABLE "keyauth_credentials" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_key" TEXT,
    "consumer_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_key"),
    FOREIGN KEY (group_id, "consumer_id") REFERENCES "consumers" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "keyauth_credentials_consumer" ON "keyauth_credentials" (group_id, "consumer_id");

CREATE TABLE "basicauth_credentials" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_username" TEXT,
    "consumer_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_username"),
    FOREIGN KEY (group_id, "consumer_id") REFERENCES "consumers" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "basicauth_credentials_consumer" ON "basicauth_credentials" (group_id, "consumer_id");

CREATE TABLE "jwt_secrets" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_key" TEXT,
    "consumer_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_key"),
    FOREIGN KEY (group_id, "consumer_id") REFERENCES "consumers" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "jwt_secrets_consumer" ON "jwt_secrets" (group_id, "consumer_id");

CREATE TABLE "hmacauth_credentials" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "u_username" TEXT,
    "consumer_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "u_username"),
    FOREIGN KEY (group_id, "consumer_id") REFERENCES "consumers" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "hmacauth_credentials_consumer" ON "hmacauth_credentials" (group_id, "consumer_id");

CREATE TABLE "acls" (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    "ck_0" TEXT NOT NULL,
    "consumer_id" TEXT,
    tags TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (group_id, id),
    UNIQUE (group_id, "ck_0"),
    FOREIGN KEY (group_id, "consumer_id") REFERENCES "consumers" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX "acls_consumer" ON "acls" (group_id, "consumer_id");

CREATE TABLE consumer_group_consumers (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    consumer_group_id TEXT NOT NULL,
    consumer_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, consumer_group_id, consumer_id),
    FOREIGN KEY (group_id, consumer_group_id) REFERENCES "consumer_groups" (group_id, id) ON DELETE CASCADE,
    FOREIGN KEY (group_id, consumer_id) REFERENCES "consumers" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX consumer_group_consumers_consumer ON consumer_group_consumers (group_id, consumer_id);
