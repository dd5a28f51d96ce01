//! The admin API's OpenAPI 3.1 document, generated from the handlers' own types and
//! annotations; the answers every operation shares are added here once.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, FieldError};
use super::{audit, clients, keys, organizations, quota, usage, wire};

#[derive(OpenApi)]
#[openapi(
    info(title = "keygate admin API", description = "API keys, OAuth2 clients, organizations and the audit log, managed over HTTP. \
        Every call authenticates with an admin credential: `Authorization: Bearer <admin key or token>` or \
        `X-API-Key: <admin key>`."),
    paths(keys::create, keys::list, keys::get, keys::update, keys::rotate, keys::disable, usage::of_key,
        clients::create, clients::list, clients::get, clients::update, clients::regenerate_secret, clients::disable,
        usage::of_client,
        organizations::create, organizations::list, organizations::get, organizations::update, audit::list,
        quota::get),
    components(schemas(ErrorBody, FieldError, wire::Limits, wire::LimitsPatch)),
    modifiers(&Shared),
    tags((name = "api-keys", description = "Long-lived keys sent in `X-API-Key` or `Authorization: Bearer`"),
        (name = "api-clients", description = "OAuth2 client-credentials clients"),
        (name = "organizations", description = "Tenants, each on a plan"),
        (name = "audit", description = "Every admin change, and every refused attempt"),
        (name = "quota", description = "A credential's own quota, for any credential"))
)]
struct AdminApi;

/// The document, as served.
pub fn document() -> Document {
    AdminApi::openapi()
}

/// What every operation shares: its security and the error answers any call can get.
struct Shared;

/// The shared answers: status, description.
const ERRORS: &[(&str, &str)] = &[
    ("400", "A parameter is invalid (named in `errors`)"),
    ("401", "No credential, or one that did not authenticate (`code` says which)"),
    ("403", "The credential lacks the admin scope, or the target is another organization's"),
    ("413", "The body is too large"),
    ("415", "The body is not `application/json`"),
    ("422", "The body does not have the documented shape (every bad field named in `errors`)"),
    ("503", "A dependency (the database) is unavailable; retry"),
];

impl Modify for Shared {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin API key, or an access token with an admin scope".to_owned()))
                    .build(),
            ),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        let security = vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("api_key", Vec::<String>::new()),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete, &mut item.put];
            for operation in operations.into_iter().flatten() {
                share(operation, &security);
            }
        }
    }
}

fn share(operation: &mut Operation, security: &[SecurityRequirement]) {
    operation.security = Some(security.to_vec());
    // utoipa names an operation after its handler (`list`, `create` in every module), but an
    // operationId must be unique in the document: prefix the tag.
    if let (Some(tag), Some(id)) = (operation.tags.as_ref().and_then(|t| t.first()), operation.operation_id.as_mut()) {
        *id = format!("{}_{id}", tag.replace('-', "_"));
    }
    // wire::Query reads an empty parameter (`?offset=`, as a form sends an empty field) as an
    // absent one, so the document allows `""` for every query parameter that is not already
    // a plain string (OpenAPI 3.1 has no allowEmptyValue that utoipa writes).
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.parameter_in == ParameterIn::Query {
            parameter.schema = parameter.schema.take().map(or_empty);
        }
    }
    for (status, description) in ERRORS {
        let has_body = operation.request_body.is_some();
        if !has_body && matches!(*status, "413" | "415" | "422") {
            continue;
        }
        let error = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
        let response = ResponseBuilder::new().description(*description).content("application/json", error).build();
        operation.responses.responses.entry((*status).to_owned()).or_insert(response.into());
    }
}

/// `schema`, or the empty string when it does not allow that already.
fn or_empty(schema: RefOr<Schema>) -> RefOr<Schema> {
    if let RefOr::T(Schema::Object(object)) = &schema
        && object.schema_type == SchemaType::Type(Type::String)
        && object.format.is_none()
        && object.enum_values.is_none()
    {
        return schema;
    }
    let empty = ObjectBuilder::new().schema_type(Type::String).enum_values(Some([""]));
    RefOr::T(Schema::AnyOf(AnyOfBuilder::new().item(schema).item(empty).build()))
}
