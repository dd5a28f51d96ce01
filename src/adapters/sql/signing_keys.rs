//! `keygate_core::ports::SigningKeyStore` on SQLite and PostgreSQL: every replica reads the same keys;
//! a rotation is announced so that the others reload at once.

use async_trait::async_trait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::SqlStore;
use super::audit;
use super::entities::signing_key;
use super::plumbing::{SIGNING_KEYS_CHANGED, announce, map_err};
use keygate_core::error::StoreError;
use keygate_core::model::{AuditEntry, SigningKeyRecord};
use keygate_core::ports::SigningKeyStore;

#[async_trait]
impl SigningKeyStore for SqlStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let read = signing_key::Entity::find()
            .order_by_desc(signing_key::Column::CreatedAt)
            .order_by_desc(signing_key::Column::Kid)
            .all(self.connection());
        let models = self.within_timeout(read).await?.map_err(map_err)?;
        Ok(models
            .into_iter()
            .map(|model| SigningKeyRecord {
                kid: model.kid,
                algorithm: model.algorithm,
                private_key_pem: model.private_key_pem,
                public_jwk: model.public_jwk,
                created_at: model.created_at,
                retired_at: model.retired_at,
            })
            .collect())
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord, audit: Option<&AuditEntry>) -> Result<(), StoreError> {
        let txn = self.connection().begin().await.map_err(map_err)?;
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetiredAt, Expr::value(key.created_at))
            .filter(signing_key::Column::RetiredAt.is_null())
            .exec(&txn)
            .await
            .map_err(map_err)?;
        let model = signing_key::ActiveModel {
            kid: ActiveValue::Set(key.kid.clone()),
            algorithm: ActiveValue::Set(key.algorithm.clone()),
            private_key_pem: ActiveValue::Set(key.private_key_pem.clone()),
            public_jwk: ActiveValue::Set(key.public_jwk.clone()),
            created_at: ActiveValue::Set(key.created_at),
            retired_at: ActiveValue::Set(None),
        };
        signing_key::Entity::insert(model).exec_without_returning(&txn).await.map_err(map_err)?;
        if let Some(audit) = audit {
            audit::insert(&txn, audit).await.map_err(map_err)?;
        }
        announce(&txn, SIGNING_KEYS_CHANGED).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)
    }

    async fn seal_signing_key(&self, kid: &str, plain: &str, sealed: &str) -> Result<bool, StoreError> {
        // Every replica holds the key in memory already: nothing to announce.
        let result = signing_key::Entity::update_many()
            .col_expr(signing_key::Column::PrivateKeyPem, Expr::value(sealed))
            .filter(signing_key::Column::Kid.eq(kid))
            .filter(signing_key::Column::PrivateKeyPem.eq(plain))
            .exec(self.connection())
            .await
            .map_err(map_err)?;
        let db = self.connection();
        if db.get_database_backend() == DbBackend::Sqlite {
            // `secure_delete` zeroes the old row's pages; the write-ahead log may still hold
            // frames with the plain key from before, so it is checkpointed and emptied now.
            db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await.map_err(map_err)?;
        }
        Ok(result.rows_affected == 1)
    }
}
