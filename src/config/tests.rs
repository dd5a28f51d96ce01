//! The loader's tests: layers, maps, every cross check, the OpenTelemetry variables.

use std::path::PathBuf;
use std::time::Duration;

use keygate_core::admin::Plan;
use keygate_core::gateway::UnmatchedAction;
use keygate_core::model::LimitOverrides;
use keygate_core::tokens::sealing::KeyEncryptionKey;
use keygate_core::tokens::signing::Algorithm;

use super::*;

fn sources(file: &str, env: &[(&str, &str)]) -> Sources {
    Sources {
        file: Some((PathBuf::from("keygate.toml"), file.to_owned())),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        flags: Vec::new(),
    }
}

#[test]
fn defaults_load() {
    let config = Config::load(&Sources::default()).expect("defaults are valid");
    assert_eq!(config.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
    assert_eq!(config.http_addr.to_string(), DEFAULT_HTTP_ADDR);
    assert_eq!(config.database.url, DEFAULT_DATABASE_URL);
}

#[test]
fn a_log_level_that_is_not_ascii_is_a_problem_not_a_panic() {
    // Found by the config fuzz target: tracing-subscriber panicked on this.
    for level in [" \u{e9}", "\u{a0}info", "info,\u{1f600}=debug"] {
        let err = Config::load(&sources("", &[("KEYGATE_LOG_LEVEL", level)])).expect_err("refused");
        assert!(err.to_string().contains("log.level"), "{err}");
    }
    assert!(log_filter("  info,keygate=debug ").is_some(), "surrounding whitespace is fine");
}

#[test]
fn layers_apply_in_order() {
    let mut s = sources(
        "grpc_addr = \"0.0.0.0:1\"\n[database]\nurl = \"sqlite://file.db\"\n[keys]\nprefix = \"kg_\"\n\
         [organizations.plans.team]\nmax_active_keys = 10\n",
        &[("KEYGATE_GRPC_ADDR", "0.0.0.0:2"), ("KEYGATE_ORGANIZATIONS_PLANS_GOLD_MAX_ACTIVE_KEYS", "7")],
    );
    s.flags.push(("grpc_addr", "0.0.0.0:3".to_owned()));
    let config = Config::load(&s).expect("valid");
    assert_eq!(config.grpc_addr.port(), 3);
    assert_eq!(config.database.url, "sqlite://file.db");
    assert_eq!(config.keys.prefix, "kg_");
    assert_eq!(config.organizations.plans.get("team"), Some(&Plan::with_keys(10)));
    assert_eq!(config.organizations.plans.get("gold"), Some(&Plan::with_keys(7)));
}

#[test]
fn plans_and_the_global_ceiling_bound_what_organization_admins_grant() {
    let s = sources(
        "[limits.ceiling]\nrate_per_minute = 1000\nmax_quota = 0\n\
         [organizations.plans.free]\nrate_per_minute = 60\nmax_concurrency = 2\n\
         [organizations.plans.team]\nmax_active_keys = 10\nrate_burst = 5\n",
        &[
            ("KEYGATE_ORGANIZATIONS_PLANS_GOLD_MAX_ACTIVE_KEYS", "7"),
            ("KEYGATE_ORGANIZATIONS_PLANS_GOLD_MAX_QUOTA", "500"),
        ],
    );
    let config = Config::load(&s).expect("valid");
    let ceiling = LimitOverrides { rate_per_minute: Some(1000), max_quota: Some(0), ..LimitOverrides::default() };
    assert_eq!(config.limits.ceiling, ceiling);
    let free = config.organizations.plans.get("free").copied().expect("free");
    let free_ceiling =
        LimitOverrides { rate_per_minute: Some(60), max_concurrency: Some(2), ..LimitOverrides::default() };
    assert_eq!((free.max_active_keys, free.ceiling), (3, free_ceiling), "the default plan keeps its key limit");
    assert_eq!(config.organizations.plans.get("team").map(|p| p.ceiling.rate_burst), Some(Some(5)));
    let gold = config.organizations.plans.get("gold").copied().expect("gold");
    assert_eq!((gold.max_active_keys, gold.ceiling.max_quota), (7, Some(500)));

    // A new plan needs its key limit; unknown plan fields and out-of-range ceilings are named.
    let s = sources(
        "[organizations.plans.bare]\nrate_per_minute = 5\n[organizations.plans.odd]\nmax_active_keys = 1\nspeed = 1\n\
         [limits.ceiling]\nmax_concurrency = 100001\nfoo = 1\n",
        &[],
    );
    let text = Config::load(&s).expect_err("invalid").to_string();
    for needle in [
        "organizations.plans.bare.max_active_keys is required",
        "organizations.plans.odd.speed: unknown setting (plans take max_active_keys, rate_per_minute",
        "limits.ceiling.max_concurrency: must be between 0 and 100000",
        "limits.ceiling.foo: unknown setting",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let s = sources(
        "bogus = 1\ngrpc_addr = \"nowhere\"\n[keys]\nprefix = \"Bad\"\ndefault_expires_in_days = \"x\"\n",
        &[("KEYGATE_NOT_A_THING", "1"), ("KEYGATE_DATABASE_RUN_MIGRATIONS", "maybe"), ("OTHER", "ignored")],
    );
    let errors = Config::load(&s).expect_err("invalid");
    let text = errors.to_string();
    for needle in
        ["bogus", "grpc_addr", "keys.prefix", "default_expires_in_days", "KEYGATE_NOT_A_THING", "RUN_MIGRATIONS"]
    {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert_eq!(errors.0.len(), 6, "{text}");
}

#[test]
fn kubernetes_service_links_are_skipped_and_other_unknowns_refused() {
    let links = [
        ("KEYGATE_SERVICE_HOST", "10.96.0.10"),
        ("KEYGATE_SERVICE_PORT", "50051"),
        ("KEYGATE_SERVICE_PORT_GRPC", "50051"),
        ("KEYGATE_SERVICE_PORT_HTTP_METRICS", "9090"),
        ("KEYGATE_PORT", "tcp://10.96.0.10:50051"),
        ("KEYGATE_PORT_50051_TCP", "tcp://10.96.0.10:50051"),
        ("KEYGATE_PORT_50051_TCP_PROTO", "tcp"),
        ("KEYGATE_PORT_50051_TCP_PORT", "50051"),
        ("KEYGATE_PORT_50051_TCP_ADDR", "10.96.0.10"),
        ("KEYGATE_PORT_53_UDP_ADDR", "10.96.0.10"),
        ("KEYGATE_PORT_9_SCTP", "sctp://10.96.0.10:9"),
    ];
    let config = Config::load(&sources("", &links)).expect("service links are not settings");
    assert_eq!(config.ignored_env.len(), links.len());
    let unknown = [
        ("KEYGATE_PORTS", "1"),
        ("KEYGATE_PORT_X_TCP", "tcp://x"),
        ("KEYGATE_PORT_50051_HTTP", "1"),
        ("KEYGATE_PORT_50051_TCP_HOST", "1"),
        ("KEYGATE_SERVICE_HOSTS", "1"),
        ("KEYGATE_SERVICE_PORT_", "1"),
        ("KEYGATE_REDIS_PORT", "6379"),
        ("KEYGATE_METRICS_SERVICE_HOST", "10.0.0.1"),
    ];
    let errors = Config::load(&sources("", &unknown)).expect_err("not service links");
    assert_eq!(errors.0.len(), unknown.len(), "{errors}");
}

#[test]
fn the_admin_cli_s_variables_are_not_settings() {
    let client = [
        ("KEYGATE_SERVER", "https://keygate.example.com:50051"),
        ("KEYGATE_CA_FILE", "/etc/ca.pem"),
        ("KEYGATE_ADMIN_KEY", "sk_live_x"),
        ("KEYGATE_ADMIN_KEY_FILE", "/run/key"),
    ];
    assert_eq!(client.len(), CLIENT_ENV.len());
    Config::load(&sources("", &client)).expect("the CLI's variables are skipped");
}

#[test]
fn redis_urls_are_checked_without_printing_them() {
    let tls = sources(
        "[limits]\nbackend = \"redis\"\nredis_url = \"rediss://:pw@redis:6380\"\nredis_ca_file = \"ca.pem\"\n",
        &[],
    );
    assert_eq!(Config::load(&tls).expect("valid").limits.redis_ca_file, Some(PathBuf::from("ca.pem")));
    let bad = sources(
        "[limits]\nbackend = \"redis\"\nredis_url = \"http://:s3cret@redis:6379\"\nredis_ca_file = \"ca.pem\"\n",
        &[],
    );
    let text = Config::load(&bad).expect_err("invalid").to_string();
    assert!(text.contains("limits.redis_url") && text.contains("\"http\"") && text.contains("redis_ca_file"), "{text}");
    assert!(!text.contains("s3cret"), "the password is never printed: {text}");
}

#[test]
fn the_key_encryption_key_comes_from_the_environment_or_a_file() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let from_env = Config::load(&sources("", &[("KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY", key)])).expect("valid");
    let kek = from_env.oauth.signing_key_encryption_key.clone().expect("set");
    assert!(!format!("{from_env:?}").contains(key), "Debug never shows the key");
    assert_eq!(kek, KeyEncryptionKey::parse(key).expect("valid"));
    let file = sources("[oauth]\nsigning_key_encryption_key_file = \"/run/secrets/kek\"\n", &[]);
    let from_file = Config::load(&file).expect("valid");
    assert_eq!(from_file.oauth.signing_key_encryption_key_file, Some(PathBuf::from("/run/secrets/kek")));
    assert_eq!(Config::load(&Sources::default()).expect("valid").oauth.signing_key_encryption_key, None);

    let bad = sources(
        &format!("[oauth]\nsigning_key_encryption_key = \"{key}\"\nsigning_key_encryption_key_file = \"k\"\n"),
        &[("KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY", "not-32-bytes-s3cret")],
    );
    let errors = Config::load(&bad).expect_err("invalid");
    let text = errors.to_string();
    for needle in ["does not belong in the config file", "KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY: must be 32"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert_eq!(errors.0.len(), 2, "{text}");
    assert!(!text.contains("s3cret") && !text.contains(key), "no error repeats a key: {text}");
    let both = sources(
        "[oauth]\nsigning_key_encryption_key_file = \"k\"\n",
        &[("KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY", key)],
    );
    let text = Config::load(&both).expect_err("both").to_string();
    assert!(text.contains("not both"), "{text}");
}

#[test]
fn metrics_addr_is_optional() {
    assert_eq!(Config::load(&Sources::default()).expect("valid").metrics_addr, None);
    let set = sources("metrics_addr = \"0.0.0.0:9090\"\n", &[]);
    assert_eq!(Config::load(&set).expect("valid").metrics_addr, Some("0.0.0.0:9090".parse().expect("addr")));
    let bad = sources("", &[("KEYGATE_METRICS_ADDR", "localhost:9090")]);
    assert!(Config::load(&bad).expect_err("invalid").to_string().contains("KEYGATE_METRICS_ADDR"));
}

#[test]
fn trusted_issuers_load_from_file_and_environment() {
    let s = sources(
        "[oauth]\nalgorithm = \"ES256\"\n[oauth.issuers.corp]\nissuer = \"https://idp.example\"\n\
         audiences = [\"api\"]\njwks_url = \"https://idp.example/jwks\"\nscope_claim = \"scp\"\n",
        &[("KEYGATE_OAUTH_ISSUERS_CORP_ORGANIZATION", "acme"), ("KEYGATE_OAUTH_ISSUERS_CORP_MIN_REFETCH_SECS", "1")],
    );
    let config = Config::load(&s).expect("valid");
    assert_eq!(config.oauth.algorithm, Algorithm::Es256);
    let corp = &config.oauth.issuers["corp"];
    assert_eq!(corp.scope_claim, "scp");
    assert_eq!(corp.organization, "acme");
    assert_eq!(corp.min_refetch, Duration::from_secs(1));
    assert_eq!(config.token_issuer(), format!("http://{DEFAULT_HTTP_ADDR}"));
}

#[test]
fn issuer_problems_are_reported() {
    let s = sources("[oauth.issuers.bad]\nbogus = 1\nalgorithms = [\"HS256\"]\n", &[]);
    let text = Config::load(&s).expect_err("invalid").to_string();
    for needle in [
        "bogus",
        "HS256",
        "bad.issuer is required",
        "exactly one of jwks_url",
        "bad.audiences",
        "set oauth.issuers.bad.organization",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn plain_http_jwks_needs_the_operators_word() {
    let issuer = |extra: &str| {
        let text = format!(
            "[oauth.issuers.corp]\nissuer = \"https://idp.example\"\naudiences = [\"api\"]\n\
             organization = \"acme\"\njwks_url = \"http://idp.example/jwks\"\n{extra}"
        );
        Config::load(&sources(&text, &[])).map_err(|errors| errors.to_string())
    };
    let refused = issuer("").expect_err("plain http");
    assert!(refused.contains("oauth.issuers.corp.jwks_url must be https://"), "{refused}");
    assert!(issuer("allow_http = true\n").expect("allowed").oauth.issuers["corp"].allow_http);
}

#[test]
fn every_issuer_is_bound_to_its_organizations() {
    let issuer = |extra: &str| {
        let text = format!(
            "[oauth.issuers.corp]\nissuer = \"https://idp.example\"\naudiences = [\"api\"]\n\
             jwks_url = \"https://idp.example/jwks\"\n{extra}"
        );
        Config::load(&sources(&text, &[])).map_err(|errors| errors.to_string())
    };
    let unbound = issuer("allow_admin_scopes = true\n").expect_err("unbound");
    assert!(
        unbound.contains("set oauth.issuers.corp.organization") && unbound.contains("allow_admin_scopes"),
        "{unbound}"
    );
    for (extra, problem) in [
        ("organization = \"acme\"\norganizations = [\"acme\"]\n", "not both"),
        ("organization = \"Acme Inc\"\n", "organization: \"Acme Inc\" is not an organization slug"),
        ("organizations = [\"acme\", \"no way\"]\n", "organizations[1]: \"no way\" is not an organization slug"),
        ("organizations = [\"acme\"]\norganization_claim = \"\"\n", "organization_claim must name"),
        ("organizations = [\"acme\", \"platform\"]\nplatform = true\n", "platform needs a fixed organization"),
        ("organization = \"acme\"\ntyp = \"at jwt\"\n", "typ: expected a media type"),
        ("organization = \"acme\"\nlasting_credentials = true\n", "it needs oauth.issuers.corp.allow_admin_scopes"),
    ] {
        let errors = issuer(extra).expect_err(extra);
        assert!(errors.contains(problem), "{problem:?} missing from:\n{errors}");
    }
    let listed = issuer("organizations = [\"acme\", \"globex\"]\nallow_admin_scopes = true\ntyp = \"at+jwt\"\n");
    let listed = listed.expect("an allow-list binds");
    let corp = &listed.oauth.issuers["corp"];
    assert_eq!(
        (corp.organizations.as_slice(), corp.typ.as_str()),
        (["acme".to_owned(), "globex".to_owned()].as_slice(), "at+jwt")
    );
    let platform = issuer("organization = \"platform\"\nplatform = true\n").expect("a platform issuer");
    assert!(platform.oauth.issuers["corp"].platform);
    let from_env = Config::load(&sources(
        "[oauth.issuers.corp]\nissuer = \"https://idp.example\"\naudiences = [\"api\"]\njwks_url = \"https://idp.example/jwks\"\n",
        &[("KEYGATE_OAUTH_ISSUERS_CORP_ORGANIZATIONS", "acme, globex"), ("KEYGATE_OAUTH_ISSUERS_CORP_TYP", "at+jwt")],
    ))
    .expect("valid");
    assert_eq!(from_env.oauth.issuers["corp"].organizations, ["acme", "globex"]);
}

#[test]
fn opentelemetry_variables() {
    let off = Config::load(&Sources::default()).expect("valid");
    assert_eq!(off.traces.export_endpoint(), None);
    let s = sources(
        "[traces]\nservice_name = \"from-file\"\n",
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317"),
            ("OTEL_SERVICE_NAME", "keygate-eu"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod, k8s.pod.name=kg-1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_UNRELATED", "ignored"),
        ],
    );
    let config = Config::load(&s).expect("valid");
    assert_eq!(config.traces.export_endpoint().as_deref(), Some("http://collector:4317"));
    assert_eq!(config.traces.service_name, "keygate-eu");
    assert_eq!(config.traces.schedule_delay, Duration::from_millis(200));
    assert_eq!(config.traces.resource_attributes.len(), 2);
    let none = sources("", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_TRACES_EXPORTER", "none")]);
    assert_eq!(Config::load(&none).expect("valid").traces.export_endpoint(), None);
    let named = sources("", &[("OTEL_TRACES_EXPORTER", "otlp")]);
    let named = Config::load(&named).expect("valid");
    assert_eq!(named.traces.export_endpoint().as_deref(), Some(DEFAULT_GRPC_ENDPOINT));
    let bad = sources(
        "",
        &[
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ],
    );
    let errors = Config::load(&bad).expect_err("invalid");
    assert_eq!(errors.0.len(), 3, "{errors}");
    assert!(errors.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL: http/json is not supported"), "{errors}");
}

fn traces(file: &str, env: &[(&str, &str)]) -> TracesConfig {
    Config::load(&sources(file, env)).expect("valid").traces
}

fn traces_errors(env: &[(&str, &str)]) -> String {
    Config::load(&sources("", env)).expect_err("invalid").to_string()
}

#[test]
fn otlp_endpoints_follow_the_specification() {
    let endpoint = |env: &[(&str, &str)]| traces("", env).export_endpoint();
    // gRPC: either endpoint as is.
    let grpc = endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317")]);
    assert_eq!(grpc.as_deref(), Some("https://collector:4317"));
    // HTTP: the base endpoint gets /v1/traces, the traces endpoint is used as is.
    let http = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    for (base, url) in [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otlp.example/otlp", "https://otlp.example/otlp/v1/traces"),
    ] {
        assert_eq!(endpoint(&[http, ("OTEL_EXPORTER_OTLP_ENDPOINT", base)]).as_deref(), Some(url), "{base}");
    }
    let own = [
        http,
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:9/in"),
    ];
    assert_eq!(endpoint(&own).as_deref(), Some("http://c:9/in"));
    // The defaults of each protocol, when the exporter is named without an endpoint.
    let named = ("OTEL_TRACES_EXPORTER", "otlp");
    assert_eq!(endpoint(&[named]).as_deref(), Some(DEFAULT_GRPC_ENDPOINT));
    assert_eq!(endpoint(&[named, http]).as_deref(), Some(DEFAULT_HTTP_ENDPOINT));
    assert_eq!(DEFAULT_HTTP_ENDPOINT, "http://localhost:4318/v1/traces");
    // The signal's own protocol wins; names are case-insensitive; an empty variable is unset.
    let both = [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP/Protobuf")];
    assert_eq!(traces("", &both).protocol, OtlpProtocol::HttpProtobuf);
    let empty = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4317"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", " ")];
    assert_eq!(endpoint(&empty).as_deref(), Some("http://base:4317"));
    assert!(!traces("", &[("OTEL_SDK_DISABLED", "")]).disabled, "an empty OTEL_ variable is unset");
    // A traces endpoint (from any layer) wins over a base endpoint, as the signal's own
    // variable does; KEYGATE_ variables override both.
    let file = "[traces]\nendpoint = \"http://file:4317\"\nprotocol = \"http/protobuf\"\n";
    let from_file = traces(file, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")]);
    assert_eq!(from_file.export_endpoint().as_deref(), Some("http://file:4317"));
    let overridden = traces(file, &[("KEYGATE_TRACES_ENDPOINT", "http://kg:4318/v1/traces")]);
    assert_eq!(overridden.export_endpoint().as_deref(), Some("http://kg:4318/v1/traces"));
    // Off means off, whatever the endpoints say.
    let off = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_SDK_DISABLED", "true")];
    assert_eq!(endpoint(&off), None);
}

#[test]
fn bad_otlp_endpoints_are_named_and_credentials_never_shown() {
    let text = traces_errors(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:hunter2@collector:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector:21"),
    ]);
    assert!(text.contains("traces.base_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): the URL must not carry"), "{text}");
    assert!(text.contains("traces.endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): \"ftp://collector:21\""), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let text = traces_errors(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
    assert!(text.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{text}");
    // A CA to verify the collector with, and a plain-text endpoint: the user meant TLS.
    let text = traces_errors(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
    ]);
    assert!(text.contains("traces.certificate (OTEL_EXPORTER_OTLP_CERTIFICATE)"), "{text}");
    let tls = traces(
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/general.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/otel/ca.pem"),
        ],
    );
    assert_eq!(tls.certificate, Some(PathBuf::from("/etc/otel/ca.pem")));
}

#[test]
fn samplers_and_their_argument() {
    let default = traces("", &[]);
    assert_eq!((default.sampler, default.ratio()), (TracesSampler::ParentBasedAlwaysOn, 1.0));
    for (name, sampler) in [
        ("always_on", TracesSampler::AlwaysOn),
        ("always_off", TracesSampler::AlwaysOff),
        ("traceidratio", TracesSampler::TraceIdRatio),
        ("parentbased_always_on", TracesSampler::ParentBasedAlwaysOn),
        ("PARENTBASED_ALWAYS_OFF", TracesSampler::ParentBasedAlwaysOff),
        ("parentbased_traceidratio", TracesSampler::ParentBasedTraceIdRatio),
    ] {
        assert_eq!(traces("", &[("OTEL_TRACES_SAMPLER", name)]).sampler, sampler, "{name}");
        assert_eq!(sampler.as_str(), name.to_ascii_lowercase());
    }
    let ratio = traces("", &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")]);
    assert_eq!(ratio.ratio(), 0.25);
    let file = traces("[traces]\nsampler = \"parentbased_traceidratio\"\nsampler_arg = 0\n", &[]);
    assert_eq!((file.sampler, file.ratio()), (TracesSampler::ParentBasedTraceIdRatio, 0.0));
    let file = traces("[traces]\nsampler_arg = 0.5\n", &[("KEYGATE_TRACES_SAMPLER", "always_off")]);
    assert_eq!((file.sampler, file.ratio()), (TracesSampler::AlwaysOff, 0.5));
    let overridden = traces("", &[("OTEL_TRACES_SAMPLER", "always_on"), ("KEYGATE_TRACES_SAMPLER", "always_off")]);
    assert_eq!(overridden.sampler, TracesSampler::AlwaysOff);

    let errors = Config::load(&sources(
        "[traces]\nsampler_arg = \"most\"\n",
        &[("OTEL_TRACES_SAMPLER", "sometimes"), ("OTEL_TRACES_SAMPLER_ARG", "1.5"), ("KEYGATE_TRACES_SAMPLER", "xray")],
    ))
    .expect_err("invalid");
    let text = errors.to_string();
    assert_eq!(errors.0.len(), 4, "{text}");
    for needle in [
        "traces.sampler_arg: expected a number, got string",
        "OTEL_TRACES_SAMPLER: expected one of always_on",
        "OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1, got 1.5",
        "KEYGATE_TRACES_SAMPLER: \"xray\" is not supported",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(traces_errors(&[("OTEL_TRACES_SAMPLER_ARG", "NaN")]).contains("from 0 to 1"));
    assert!(traces_errors(&[("OTEL_TRACES_SAMPLER_ARG", "-0.1")]).contains("from 0 to 1"));
}

#[test]
fn otlp_headers_are_parsed_and_never_shown() {
    let config = Config::load(&sources(
        "",
        &[
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-general=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-api-key=abc%20d%3Def, X-Tenant = acme ,x-tenant=globex"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
        ],
    ))
    .expect("valid");
    let headers = &config.traces.headers.0;
    let expected = [("x-api-key", "abc d=ef"), ("x-tenant", "globex")];
    assert_eq!(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect::<Vec<_>>(), expected);
    assert_eq!(config.traces.timeout, Duration::from_millis(2500));
    assert_eq!(traces("", &[]).timeout, Duration::from_secs(10));
    let debug = format!("{config:?}");
    assert!(debug.contains("x-api-key") && !debug.contains("abc d=ef"), "{debug}");

    for (value, needle) in [
        ("Authorization: Bearer hunter2", "entry 1 is not name=value"),
        ("x-a=1,Authorization Bearer=hunter2", "entry 2: the name is not an HTTP header name"),
        ("x-api-key=", "header \"x-api-key\": the value is empty"),
        ("x-api-key=hunter2%0a", "header \"x-api-key\": the value is empty or holds characters"),
        ("x-api-key=%ff", "header \"x-api-key\": the value is not UTF-8"),
        ("Content-Type=text/plain", "entry 1: \"content-type\" is set by the exporter itself"),
        ("grpc-timeout=1S", "entry 1: \"grpc-timeout\" is set by the exporter itself"),
    ] {
        let text = traces_errors(&[("OTEL_EXPORTER_OTLP_HEADERS", value)]);
        assert!(
            text.contains(&format!("environment variable OTEL_EXPORTER_OTLP_HEADERS: {needle}")),
            "{value}: {text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn tls_and_shutdown_settings() {
    let s = sources(
        "[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n[shutdown]\ngrace_secs = 5\n",
        &[("KEYGATE_TLS_CLIENT_CA_FILE", "ca.pem"), ("KEYGATE_SHUTDOWN_DRAIN_DELAY_SECS", "2")],
    );
    let config = Config::load(&s).expect("valid");
    assert_eq!(config.tls.client_ca_file, Some(PathBuf::from("ca.pem")));
    assert_eq!((config.shutdown.grace, config.shutdown.drain_delay), (Duration::from_secs(5), Duration::from_secs(2)));
    let half = sources("[tls]\nclient_ca_file = \"ca.pem\"\nkey_file = \"key.pem\"\n", &[]);
    let text = Config::load(&half).expect_err("invalid").to_string();
    assert!(text.contains("tls.cert_file is required") && text.contains("tls.client_ca_file"), "{text}");
}

#[test]
fn envoy_settings() {
    let s = sources(
        "[envoy]\npolicy_file = \"routes.toml\"\ndefault_action = \"allow\"\n[envoy.headers]\nscopes = \"X-Scopes\"\n",
        &[("KEYGATE_ENVOY_STRIP_CREDENTIALS", "false"), ("KEYGATE_ENVOY_HEADERS_API_KEY", "x-token")],
    );
    let config = Config::load(&s).expect("valid");
    assert_eq!(config.envoy.policy_file, Some(PathBuf::from("routes.toml")));
    assert_eq!(config.envoy.default_action, UnmatchedAction::Allow);
    assert!(!config.envoy.strip_credentials);
    assert_eq!((config.envoy.headers.scopes.as_str(), config.envoy.headers.api_key.as_str()), ("x-scopes", "x-token"));

    let bad = sources(
        "[envoy]\ndefault_action = \"maybe\"\n[envoy.headers]\nscopes = \"x scopes\"\norganization = \"x-api-key\"\n",
        &[],
    );
    let text = Config::load(&bad).expect_err("invalid").to_string();
    for needle in ["envoy.default_action", "envoy.headers.scopes", "envoy.headers.organization"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}
