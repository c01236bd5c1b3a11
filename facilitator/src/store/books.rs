//! [`Books`](crate::books::Books) in SQL, the same statements on SQLite and PostgreSQL.
//!
//! Concurrency: every transaction that changes an account starts by writing its row
//! (`UPDATE accounts … RETURNING`), which takes the row's lock in PostgreSQL (other
//! transactions on the account wait, then see its committed state) and the database's write
//! lock in SQLite (transactions begin `IMMEDIATE`). The replay key is inserted with
//! `ON CONFLICT DO NOTHING` in the paying transaction: of concurrent payments of one invoice, on
//! any number of instances, one inserts it and the others find it and roll back.

/// Journal memos.
pub(crate) mod memo {
    pub(crate) const DEPOSIT: &str = "deposit";
    pub(crate) const PAYMENT_HOLD: &str = "payment verified";
    pub(crate) const PAYMENT_RELEASE: &str = "payment settled or refused";
    pub(crate) const HOLD_ENDED: &str = "hold expired, or its invoice paid";
    pub(crate) const PAYMENT: &str = "payment";
    pub(crate) const WITHDRAWAL_HOLD: &str = "withdrawal started";
    pub(crate) const WITHDRAWAL_RELEASE: &str = "withdrawal ended";
    pub(crate) const WITHDRAWAL: &str = "withdrawal";
}

/// Implements [`Books`](crate::books::Books) for a store holding an sqlx `pool` of database
/// `$db`, whose transactions begin with `$begin`; `$row_locks` says whether a transaction must
/// lock the invoice's row (PostgreSQL) or already holds the whole database's write lock (SQLite,
/// `BEGIN IMMEDIATE`).
macro_rules! books_on_pool {
    ($store:ty, $db:ty, $begin:expr, $row_locks:expr) => {
        impl $store {
            async fn begin(&self) -> Result<sqlx::Transaction<'static, $db>, sqlx::Error> {
                self.pool.begin_with($begin).await
            }

            /// Locks the account's row; its balance, or `None` if it does not exist.
            async fn lock_account(
                tx: &mut sqlx::Transaction<'static, $db>,
                account: &$crate::books::AccountId,
            ) -> Result<Option<$crate::books::Balance>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "UPDATE accounts SET held_msat = held_msat WHERE network = $1 AND account = $2 \
                     RETURNING balance_msat, held_msat",
                )
                .bind(account.network.as_str())
                .bind(account.account.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                row.map(|row| {
                    Ok($crate::books::Balance {
                        balance_msat: $crate::store::to_u64(row.try_get(0)?)?,
                        held_msat: $crate::store::to_u64(row.try_get(1)?)?,
                    })
                })
                .transpose()
            }

            /// Releases the account's holds that ended (journaled): expired, or whose invoice was
            /// paid (by another account, or in the lnbtc flow); returns the balance after.
            async fn release_expired(
                tx: &mut sqlx::Transaction<'static, $db>,
                account: &$crate::books::AccountId,
                mut balance: $crate::books::Balance,
                now: u64,
            ) -> Result<$crate::books::Balance, $crate::store::StoreError> {
                use sqlx::Row as _;
                let now = $crate::store::to_i64(now)?;
                let expired: i64 = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(amount_msat), 0) AS BIGINT) FROM holds \
                     WHERE network = $1 AND account = $2 AND (expires_at < $3 \
                     OR replay_key IN (SELECT replay_key FROM replay_keys))",
                )
                .bind(account.network.as_str())
                .bind(account.account.as_str())
                .bind(now)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
                if expired == 0 {
                    return Ok(balance);
                }
                sqlx::query(
                    "INSERT INTO journal (network, account, kind, amount_msat, payment_hash, memo, at) \
                     SELECT network, account, 'release', amount_msat, payment_hash, $4, $3 FROM holds \
                     WHERE network = $1 AND account = $2 AND (expires_at < $3 \
                     OR replay_key IN (SELECT replay_key FROM replay_keys))",
                )
                .bind(account.network.as_str())
                .bind(account.account.as_str())
                .bind(now)
                .bind($crate::store::books::memo::HOLD_ENDED)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "DELETE FROM holds WHERE network = $1 AND account = $2 AND (expires_at < $3 \
                     OR replay_key IN (SELECT replay_key FROM replay_keys))",
                )
                .bind(account.network.as_str())
                .bind(account.account.as_str())
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Self::add_held(tx, account, -expired).await?;
                balance.held_msat = balance
                    .held_msat
                    .saturating_sub($crate::store::to_u64(expired)?);
                Ok(balance)
            }

            /// Locks the recorded invoice's row (after the account's: always in that order),
            /// where the transaction does not hold the database's write lock already.
            async fn lock_invoice(
                tx: &mut sqlx::Transaction<'static, $db>,
                payment_hash: &str,
            ) -> Result<(), $crate::store::StoreError> {
                if $row_locks {
                    sqlx::query(
                        "UPDATE invoices SET amount_msat = amount_msat WHERE payment_hash = $1",
                    )
                    .bind(payment_hash)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            /// Whether the invoice is paid (its replay key recorded), and the account's hold
            /// for it (msat, 0: none), in one statement.
            async fn paid_and_held(
                tx: &mut sqlx::Transaction<'static, $db>,
                replay_key: &str,
                account: &$crate::books::AccountId,
                payment_hash: &str,
            ) -> Result<(bool, u64), $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM replay_keys WHERE replay_key = $1), \
                     (SELECT COALESCE(MAX(amount_msat), 0) FROM holds \
                      WHERE payment_hash = $2 AND network = $3 AND account = $4)",
                )
                .bind(replay_key)
                .bind(payment_hash)
                .bind(account.network.as_str())
                .bind(account.account.as_str())
                .fetch_one(&mut **tx)
                .await?;
                let paid: i64 = row.try_get(0)?;
                Ok((paid > 0, $crate::store::to_u64(row.try_get(1)?)?))
            }

            /// Adds `balance` and `held` (negative: subtracts) to the account's row, in one
            /// statement (its CHECK constraints hold after it, or the transaction fails).
            async fn adjust(
                tx: &mut sqlx::Transaction<'static, $db>,
                account: &$crate::books::AccountId,
                balance: i64,
                held: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE accounts SET balance_msat = balance_msat + $3, held_msat = held_msat + $4 \
                     WHERE network = $1 AND account = $2",
                )
                .bind(account.network.as_str())
                .bind(account.account.as_str())
                .bind(balance)
                .bind(held)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Adds `delta` (negative: subtracts) to the account's held amount.
            async fn add_held(
                tx: &mut sqlx::Transaction<'static, $db>,
                account: &$crate::books::AccountId,
                delta: i64,
            ) -> Result<(), $crate::store::StoreError> {
                Self::adjust(tx, account, 0, delta).await
            }

            /// Appends a journal row.
            async fn journal(
                tx: &mut sqlx::Transaction<'static, $db>,
                account: &$crate::books::AccountId,
                kind: &'static str,
                amount_msat: u64,
                payment_hash: &str,
                memo: &'static str,
                now: u64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO journal (network, account, kind, amount_msat, payment_hash, memo, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(account.network.as_str())
                .bind(account.account.as_str())
                .bind(kind)
                .bind($crate::store::to_i64(amount_msat)?)
                .bind(payment_hash)
                .bind(memo)
                .bind($crate::store::to_i64(now)?)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn replay_key_exists(
                tx: &mut sqlx::Transaction<'static, $db>,
                replay_key: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                Ok(sqlx::query("SELECT 1 FROM replay_keys WHERE replay_key = $1")
                    .bind(replay_key)
                    .fetch_optional(&mut **tx)
                    .await?
                    .is_some())
            }

            /// The account's hold for `payment_hash`, msat (0: none).
            async fn own_hold(
                tx: &mut sqlx::Transaction<'static, $db>,
                account: &$crate::books::AccountId,
                payment_hash: &str,
            ) -> Result<u64, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT amount_msat FROM holds \
                     WHERE payment_hash = $1 AND network = $2 AND account = $3",
                )
                .bind(payment_hash)
                .bind(account.network.as_str())
                .bind(account.account.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                match row {
                    Some(row) => $crate::store::to_u64(row.try_get(0)?),
                    None => Ok(0),
                }
            }

            fn deposit_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::books::DepositRecord, $crate::store::StoreError> {
                use sqlx::Row as _;
                let network: String = row.try_get("network")?;
                let state: String = row.try_get("state")?;
                Ok($crate::books::DepositRecord {
                    payment_hash: row.try_get("payment_hash")?,
                    account: $crate::books::AccountId {
                        network: $crate::store::parse_network(&network)?,
                        account: row.try_get("account")?,
                    },
                    network_id: row.try_get("network_id")?,
                    amount_msat: $crate::store::to_u64(row.try_get("amount_msat")?)?,
                    invoice: row.try_get("invoice")?,
                    expires_at: $crate::store::to_u64(row.try_get("expires_at")?)?,
                    state: if state == "credited" {
                        $crate::books::DepositState::Credited
                    } else {
                        $crate::books::DepositState::Pending
                    },
                })
            }

            fn withdrawal_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::books::WithdrawalRecord, $crate::store::StoreError> {
                use sqlx::Row as _;
                let network: String = row.try_get("network")?;
                let state: String = row.try_get("state")?;
                Ok($crate::books::WithdrawalRecord {
                    payment_hash: row.try_get("payment_hash")?,
                    account: $crate::books::AccountId {
                        network: $crate::store::parse_network(&network)?,
                        account: row.try_get("account")?,
                    },
                    invoice: row.try_get("invoice")?,
                    amount_msat: $crate::store::to_u64(row.try_get("amount_msat")?)?,
                    max_fee_msat: $crate::store::to_u64(row.try_get("max_fee_msat")?)?,
                    state: $crate::books::WithdrawalState::parse(&state)
                        .ok_or_else(|| $crate::store::StoreError::Corrupt(format!("withdrawal state {state}")))?,
                    fee_msat: $crate::store::to_u64(row.try_get("fee_msat")?)?,
                    preimage: row.try_get("preimage")?,
                    reason: row.try_get("reason")?,
                    updated_at: $crate::store::to_u64(row.try_get("updated_at")?)?,
                })
            }
        }

        impl $crate::books::Books for $store {
            fn record_invoice<'a>(
                &'a self,
                invoice: &'a $crate::books::InvoiceRecord,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO invoices (payment_hash, network, invoice, amount_msat, expires_at, resource, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (payment_hash) DO NOTHING",
                    )
                    .bind(invoice.payment_hash.as_str())
                    .bind(invoice.network.as_str())
                    .bind(invoice.invoice.as_str())
                    .bind($crate::store::to_i64(invoice.amount_msat)?)
                    .bind($crate::store::to_i64(invoice.expires_at)?)
                    .bind(invoice.resource.as_str())
                    .bind($crate::store::to_i64(invoice.created_at)?)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }

            fn recorded_invoice<'a>(
                &'a self,
                payment_hash: &'a str,
            ) -> $crate::store::StoreFuture<'a, Option<$crate::books::InvoiceRecord>> {
                Box::pin(async move {
                    use sqlx::Row as _;
                    let row = sqlx::query(
                        "SELECT payment_hash, network, invoice, amount_msat, expires_at, resource, created_at \
                         FROM invoices WHERE payment_hash = $1",
                    )
                    .bind(payment_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    let network: String = row.try_get("network")?;
                    Ok(Some($crate::books::InvoiceRecord {
                        payment_hash: row.try_get("payment_hash")?,
                        network: $crate::store::parse_network(&network)?,
                        invoice: row.try_get("invoice")?,
                        amount_msat: $crate::store::to_u64(row.try_get("amount_msat")?)?,
                        expires_at: $crate::store::to_u64(row.try_get("expires_at")?)?,
                        resource: row.try_get("resource")?,
                        created_at: $crate::store::to_u64(row.try_get("created_at")?)?,
                    }))
                })
            }

            fn is_paid<'a>(&'a self, replay_key: &'a str) -> $crate::store::StoreFuture<'a, bool> {
                Box::pin(async move {
                    Ok(sqlx::query("SELECT 1 FROM replay_keys WHERE replay_key = $1")
                        .bind(replay_key)
                        .fetch_optional(&self.pool)
                        .await?
                        .is_some())
                })
            }

            fn hold<'a>(
                &'a self,
                hold: &'a $crate::books::HoldRequest,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, $crate::books::Outcome> {
                use $crate::books::Outcome;
                Box::pin(async move {
                    // The account's live hold for this invoice (a verify's, seen by its settle):
                    // nothing to write.
                    let held = sqlx::query(
                        "SELECT 1 FROM holds WHERE payment_hash = $1 AND network = $2 AND account = $3 \
                         AND expires_at >= $4 AND replay_key NOT IN (SELECT replay_key FROM replay_keys)",
                    )
                    .bind(hold.payment_hash.as_str())
                    .bind(hold.account.network.as_str())
                    .bind(hold.account.account.as_str())
                    .bind($crate::store::to_i64(now)?)
                    .fetch_optional(&self.pool)
                    .await?;
                    if held.is_some() {
                        return Ok(Outcome::Done);
                    }
                    let mut tx = self.begin().await?;
                    let Some(balance) = Self::lock_account(&mut tx, &hold.account).await? else {
                        return Ok(if Self::replay_key_exists(&mut tx, &hold.replay_key).await? {
                            Outcome::AlreadyPaid
                        } else {
                            Outcome::InsufficientFunds
                        });
                    };
                    // Holds and payments of one invoice take turns: a hold placed while the
                    // invoice is being paid is seen (and ended) by the payment, or sees it paid.
                    Self::lock_invoice(&mut tx, &hold.payment_hash).await?;
                    let balance = Self::release_expired(&mut tx, &hold.account, balance, now).await?;
                    let (paid, held) =
                        Self::paid_and_held(&mut tx, &hold.replay_key, &hold.account, &hold.payment_hash).await?;
                    let outcome = if paid {
                        Outcome::AlreadyPaid
                    } else if held > 0 {
                        Outcome::Done
                    } else if balance.available_msat() < hold.amount_msat {
                        Outcome::InsufficientFunds
                    } else {
                        sqlx::query(
                            "INSERT INTO holds (payment_hash, network, account, replay_key, amount_msat, expires_at) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(hold.payment_hash.as_str())
                        .bind(hold.account.network.as_str())
                        .bind(hold.account.account.as_str())
                        .bind(hold.replay_key.as_str())
                        .bind($crate::store::to_i64(hold.amount_msat)?)
                        .bind($crate::store::to_i64(hold.expires_at)?)
                        .execute(&mut *tx)
                        .await?;
                        Self::add_held(&mut tx, &hold.account, $crate::store::to_i64(hold.amount_msat)?).await?;
                        Self::journal(&mut tx, &hold.account, "hold", hold.amount_msat, &hold.payment_hash,
                            $crate::store::books::memo::PAYMENT_HOLD, now).await?;
                        Outcome::Done
                    };
                    tx.commit().await?;
                    Ok(outcome)
                })
            }

            fn release<'a>(
                &'a self,
                account: &'a $crate::books::AccountId,
                payment_hash: &'a str,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    let mut tx = self.begin().await?;
                    if Self::lock_account(&mut tx, account).await?.is_none() {
                        return Ok(());
                    }
                    let held = Self::own_hold(&mut tx, account, payment_hash).await?;
                    if held > 0 {
                        sqlx::query(
                            "DELETE FROM holds WHERE payment_hash = $1 AND network = $2 AND account = $3",
                        )
                        .bind(payment_hash)
                        .bind(account.network.as_str())
                        .bind(account.account.as_str())
                        .execute(&mut *tx)
                        .await?;
                        Self::add_held(&mut tx, account, -$crate::store::to_i64(held)?).await?;
                        Self::journal(&mut tx, account, "release", held, payment_hash,
                            $crate::store::books::memo::PAYMENT_RELEASE, now).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn pay<'a>(
                &'a self,
                payment: &'a $crate::books::PaymentRequest,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, $crate::books::Outcome> {
                use $crate::books::Outcome;
                Box::pin(async move {
                    let mut tx = self.begin().await?;
                    let Some(balance) = Self::lock_account(&mut tx, &payment.account).await? else {
                        return Ok(if Self::replay_key_exists(&mut tx, &payment.replay_key).await? {
                            Outcome::AlreadyPaid
                        } else {
                            Outcome::InsufficientFunds
                        });
                    };
                    Self::lock_invoice(&mut tx, &payment.payment_hash).await?;
                    let balance = Self::release_expired(&mut tx, &payment.account, balance, now).await?;
                    let (paid, held) = Self::paid_and_held(
                        &mut tx,
                        &payment.replay_key,
                        &payment.account,
                        &payment.payment_hash,
                    )
                    .await?;
                    if paid {
                        tx.commit().await?;
                        return Ok(Outcome::AlreadyPaid);
                    }
                    if balance.available_msat().saturating_add(held) < payment.amount_msat {
                        tx.commit().await?;
                        return Ok(Outcome::InsufficientFunds);
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO replay_keys (replay_key, retain_until, settled_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (replay_key) DO NOTHING",
                    )
                    .bind(payment.replay_key.as_str())
                    .bind($crate::store::to_i64(payment.retain_until)?)
                    .bind($crate::store::to_i64(now)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted != 1 {
                        // Another payment of this invoice committed first (either flow).
                        tx.rollback().await?;
                        return Ok(Outcome::AlreadyPaid);
                    }
                    if held > 0 {
                        sqlx::query(
                            "DELETE FROM holds WHERE payment_hash = $1 AND network = $2 AND account = $3",
                        )
                        .bind(payment.payment_hash.as_str())
                        .bind(payment.account.network.as_str())
                        .bind(payment.account.account.as_str())
                        .execute(&mut *tx)
                        .await?;
                        Self::journal(&mut tx, &payment.account, "release", held, &payment.payment_hash,
                            $crate::store::books::memo::PAYMENT_RELEASE, now).await?;
                    }
                    // The debit and the hold's release, in one statement.
                    Self::adjust(
                        &mut tx,
                        &payment.account,
                        -$crate::store::to_i64(payment.amount_msat)?,
                        -$crate::store::to_i64(held)?,
                    )
                    .await?;
                    Self::journal(&mut tx, &payment.account, "debit", payment.amount_msat, &payment.payment_hash,
                        $crate::store::books::memo::PAYMENT, now).await?;
                    sqlx::query(
                        "INSERT INTO payments (payment_hash, network, payer, amount_msat, preimage, settled_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(payment.payment_hash.as_str())
                    .bind(payment.account.network.as_str())
                    .bind(payment.account.account.as_str())
                    .bind($crate::store::to_i64(payment.amount_msat)?)
                    .bind(payment.preimage.as_str())
                    .bind($crate::store::to_i64(now)?)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(Outcome::Done)
                })
            }

            fn balance<'a>(
                &'a self,
                account: &'a $crate::books::AccountId,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, Option<$crate::books::Balance>> {
                Box::pin(async move {
                    let mut tx = self.begin().await?;
                    let Some(balance) = Self::lock_account(&mut tx, account).await? else {
                        return Ok(None);
                    };
                    let balance = Self::release_expired(&mut tx, account, balance, now).await?;
                    tx.commit().await?;
                    Ok(Some(balance))
                })
            }

            fn record_deposit<'a>(
                &'a self,
                deposit: &'a $crate::books::DepositRecord,
                now: u64,
                max_pending: u32,
            ) -> $crate::store::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let inserted = sqlx::query(
                        "INSERT INTO deposits (payment_hash, network, network_id, account, amount_msat, invoice, expires_at, state, created_at) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, 'pending', $8 \
                         WHERE (SELECT COUNT(*) FROM deposits WHERE network = $2 AND account = $4 \
                         AND state = 'pending' AND expires_at >= $8) < $9",
                    )
                    .bind(deposit.payment_hash.as_str())
                    .bind(deposit.account.network.as_str())
                    .bind(deposit.network_id.as_str())
                    .bind(deposit.account.account.as_str())
                    .bind($crate::store::to_i64(deposit.amount_msat)?)
                    .bind(deposit.invoice.as_str())
                    .bind($crate::store::to_i64(deposit.expires_at)?)
                    .bind($crate::store::to_i64(now)?)
                    .bind(i64::from(max_pending))
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    Ok(inserted == 1)
                })
            }

            fn deposit<'a>(
                &'a self,
                payment_hash: &'a str,
            ) -> $crate::store::StoreFuture<'a, Option<$crate::books::DepositRecord>> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT payment_hash, network, network_id, account, amount_msat, invoice, expires_at, state \
                         FROM deposits WHERE payment_hash = $1",
                    )
                    .bind(payment_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(Self::deposit_from_row).transpose()
                })
            }

            fn pending_deposits<'a>(
                &'a self,
                account: Option<&'a $crate::books::AccountId>,
                expiring_from: u64,
                limit: u32,
            ) -> $crate::store::StoreFuture<'a, Vec<$crate::books::DepositRecord>> {
                Box::pin(async move {
                    const COLUMNS: &str = "payment_hash, network, network_id, account, amount_msat, invoice, expires_at, state";
                    let rows = match account {
                        Some(account) => {
                            sqlx::query(sqlx::AssertSqlSafe(format!(
                                "SELECT {COLUMNS} FROM deposits WHERE state = 'pending' \
                                 AND network = $1 AND account = $2 AND expires_at >= $4 \
                                 ORDER BY created_at DESC LIMIT $3"
                            )))
                            .bind(account.network.as_str())
                            .bind(account.account.as_str())
                            .bind(i64::from(limit))
                            .bind($crate::store::to_i64(expiring_from)?)
                            .fetch_all(&self.pool)
                            .await?
                        }
                        None => {
                            sqlx::query(sqlx::AssertSqlSafe(format!(
                                "SELECT {COLUMNS} FROM deposits WHERE state = 'pending' \
                                 AND expires_at >= $2 ORDER BY checked_at, created_at LIMIT $1"
                            )))
                            .bind(i64::from(limit))
                            .bind($crate::store::to_i64(expiring_from)?)
                            .fetch_all(&self.pool)
                            .await?
                        }
                    };
                    rows.iter().map(Self::deposit_from_row).collect()
                })
            }

            fn deposit_checked<'a>(
                &'a self,
                payment_hash: &'a str,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query("UPDATE deposits SET checked_at = $2 WHERE payment_hash = $1")
                        .bind(payment_hash)
                        .bind($crate::store::to_i64(now)?)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
            }

            fn release_all<'a>(
                &'a self,
                payment_hash: &'a str,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    use sqlx::Row as _;
                    let rows = sqlx::query("SELECT network, account FROM holds WHERE payment_hash = $1")
                        .bind(payment_hash)
                        .fetch_all(&self.pool)
                        .await?;
                    for row in rows {
                        let network: String = row.try_get(0)?;
                        let account = $crate::books::AccountId {
                            network: $crate::store::parse_network(&network)?,
                            account: row.try_get(1)?,
                        };
                        self.release(&account, payment_hash, now).await?;
                    }
                    Ok(())
                })
            }

            fn credit_deposit<'a>(
                &'a self,
                payment_hash: &'a str,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, bool> {
                Box::pin(async move {
                    use sqlx::Row as _;
                    let mut tx = self.begin().await?;
                    let row = sqlx::query(
                        "UPDATE deposits SET state = 'credited', credited_at = $2 \
                         WHERE payment_hash = $1 AND state = 'pending' \
                         RETURNING network, account, amount_msat",
                    )
                    .bind(payment_hash)
                    .bind($crate::store::to_i64(now)?)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        tx.rollback().await?;
                        return Ok(false);
                    };
                    let network: String = row.try_get(0)?;
                    let account = $crate::books::AccountId {
                        network: $crate::store::parse_network(&network)?,
                        account: row.try_get(1)?,
                    };
                    let amount: i64 = row.try_get(2)?;
                    // No balance passes all the bitcoin there is: the sums stay far from BIGINT's
                    // limit on both databases.
                    let credited = sqlx::query(
                        "INSERT INTO accounts (network, account, balance_msat, held_msat, created_at) \
                         VALUES ($1, $2, $3, 0, $4) ON CONFLICT (network, account) \
                         DO UPDATE SET balance_msat = accounts.balance_msat + excluded.balance_msat \
                         WHERE accounts.balance_msat + excluded.balance_msat <= $5",
                    )
                    .bind(account.network.as_str())
                    .bind(account.account.as_str())
                    .bind(amount)
                    .bind($crate::store::to_i64(now)?)
                    .bind($crate::store::to_i64($crate::books::MAX_BALANCE_MSAT)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if credited != 1 || $crate::store::to_u64(amount)? > $crate::books::MAX_BALANCE_MSAT {
                        tx.rollback().await?;
                        return Err($crate::store::StoreError::Corrupt(format!(
                            "deposit {payment_hash}: the balance would pass {} msat",
                            $crate::books::MAX_BALANCE_MSAT
                        )));
                    }
                    Self::journal(&mut tx, &account, "credit", $crate::store::to_u64(amount)?, payment_hash,
                        $crate::store::books::memo::DEPOSIT, now).await?;
                    tx.commit().await?;
                    Ok(true)
                })
            }

            fn start_withdrawal<'a>(
                &'a self,
                withdrawal: &'a $crate::books::WithdrawalRecord,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, $crate::books::WithdrawalStart> {
                use $crate::books::{WithdrawalStart, WithdrawalState};
                Box::pin(async move {
                    use sqlx::Row as _;
                    let hold = withdrawal
                        .amount_msat
                        .checked_add(withdrawal.max_fee_msat)
                        .ok_or($crate::store::StoreError::OutOfRange(u64::MAX))?;
                    let mut tx = self.begin().await?;
                    let state_of = |row: Option<<$db as sqlx::Database>::Row>| -> Result<Option<WithdrawalState>, $crate::store::StoreError> {
                        match row {
                            Some(row) => {
                                let state: String = row.try_get(0)?;
                                Ok(WithdrawalState::parse(&state))
                            }
                            None => Ok(None),
                        }
                    };
                    let existing = state_of(
                        sqlx::query("SELECT state FROM withdrawals WHERE payment_hash = $1")
                            .bind(withdrawal.payment_hash.as_str())
                            .fetch_optional(&mut *tx)
                            .await?,
                    )?;
                    match existing {
                        Some(WithdrawalState::Succeeded) => return Ok(WithdrawalStart::AlreadyPaid),
                        Some(WithdrawalState::Pending) => return Ok(WithdrawalStart::InFlight),
                        Some(WithdrawalState::Failed) | None => {}
                    }
                    let Some(balance) = Self::lock_account(&mut tx, &withdrawal.account).await? else {
                        return Ok(WithdrawalStart::InsufficientFunds);
                    };
                    let balance = Self::release_expired(&mut tx, &withdrawal.account, balance, now).await?;
                    if balance.available_msat() < hold {
                        tx.commit().await?;
                        return Ok(WithdrawalStart::InsufficientFunds);
                    }
                    let started = sqlx::query(
                        "INSERT INTO withdrawals (payment_hash, network, account, invoice, amount_msat, max_fee_msat, held_msat, state, fee_msat, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8) \
                         ON CONFLICT (payment_hash) DO UPDATE SET network = excluded.network, \
                         account = excluded.account, invoice = excluded.invoice, amount_msat = excluded.amount_msat, \
                         max_fee_msat = excluded.max_fee_msat, held_msat = excluded.held_msat, state = 'pending', \
                         fee_msat = 0, preimage = NULL, reason = NULL, updated_at = excluded.updated_at \
                         WHERE withdrawals.state = 'failed'",
                    )
                    .bind(withdrawal.payment_hash.as_str())
                    .bind(withdrawal.account.network.as_str())
                    .bind(withdrawal.account.account.as_str())
                    .bind(withdrawal.invoice.as_str())
                    .bind($crate::store::to_i64(withdrawal.amount_msat)?)
                    .bind($crate::store::to_i64(withdrawal.max_fee_msat)?)
                    .bind($crate::store::to_i64(hold)?)
                    .bind($crate::store::to_i64(now)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if started != 1 {
                        // Another request started (or finished) it since the read above.
                        let state = state_of(
                            sqlx::query("SELECT state FROM withdrawals WHERE payment_hash = $1")
                                .bind(withdrawal.payment_hash.as_str())
                                .fetch_optional(&mut *tx)
                                .await?,
                        )?;
                        tx.rollback().await?;
                        return Ok(match state {
                            Some(WithdrawalState::Succeeded) => WithdrawalStart::AlreadyPaid,
                            _ => WithdrawalStart::InFlight,
                        });
                    }
                    Self::add_held(&mut tx, &withdrawal.account, $crate::store::to_i64(hold)?).await?;
                    Self::journal(&mut tx, &withdrawal.account, "hold", hold, &withdrawal.payment_hash,
                        $crate::store::books::memo::WITHDRAWAL_HOLD, now).await?;
                    tx.commit().await?;
                    Ok(WithdrawalStart::Started)
                })
            }

            fn end_withdrawal<'a>(
                &'a self,
                payment_hash: &'a str,
                end: &'a $crate::books::WithdrawalEnd,
                now: u64,
            ) -> $crate::store::StoreFuture<'a, Option<$crate::books::WithdrawalRecord>> {
                use $crate::books::{WithdrawalEnd, WithdrawalState};
                Box::pin(async move {
                    use sqlx::Row as _;
                    let mut tx = self.begin().await?;
                    let row = sqlx::query(
                        "SELECT payment_hash, network, account, invoice, amount_msat, max_fee_msat, state, fee_msat, preimage, reason, updated_at, held_msat \
                         FROM withdrawals WHERE payment_hash = $1",
                    )
                    .bind(payment_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    let mut record = Self::withdrawal_from_row(&row)?;
                    if record.state != WithdrawalState::Pending {
                        tx.rollback().await?;
                        return Ok(Some(record));
                    }
                    let held = $crate::store::to_u64(row.try_get("held_msat")?)?;
                    if Self::lock_account(&mut tx, &record.account).await?.is_none() {
                        return Err($crate::store::StoreError::Corrupt(format!(
                            "withdrawal {payment_hash} of an account that does not exist"
                        )));
                    }
                    let (state, fee_msat, preimage, reason) = match end {
                        WithdrawalEnd::Succeeded { fee_msat, preimage } => {
                            // The node was given the limit; never debit past what was held.
                            (WithdrawalState::Succeeded, (*fee_msat).min(record.max_fee_msat), Some(preimage.clone()), None)
                        }
                        WithdrawalEnd::Failed { reason } => (WithdrawalState::Failed, 0, None, Some(reason.clone())),
                    };
                    let ended = sqlx::query(
                        "UPDATE withdrawals SET state = $2, fee_msat = $3, preimage = $4, reason = $5, held_msat = 0, updated_at = $6 \
                         WHERE payment_hash = $1 AND state = 'pending'",
                    )
                    .bind(payment_hash)
                    .bind(state.as_str())
                    .bind($crate::store::to_i64(fee_msat)?)
                    .bind(preimage.clone())
                    .bind(reason.clone())
                    .bind($crate::store::to_i64(now)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if ended != 1 {
                        // Another call ended it first.
                        tx.rollback().await?;
                        return self.withdrawal_now(payment_hash).await;
                    }
                    Self::add_held(&mut tx, &record.account, -$crate::store::to_i64(held)?).await?;
                    Self::journal(&mut tx, &record.account, "release", held, payment_hash,
                        $crate::store::books::memo::WITHDRAWAL_RELEASE, now).await?;
                    if state == WithdrawalState::Succeeded {
                        let debit = record.amount_msat.saturating_add(fee_msat);
                        Self::adjust(&mut tx, &record.account, -$crate::store::to_i64(debit)?, 0).await?;
                        Self::journal(&mut tx, &record.account, "debit", debit, payment_hash,
                            $crate::store::books::memo::WITHDRAWAL, now).await?;
                    }
                    tx.commit().await?;
                    record.state = state;
                    record.fee_msat = fee_msat;
                    record.preimage = preimage;
                    record.reason = reason;
                    Ok(Some(record))
                })
            }

            fn withdrawal<'a>(
                &'a self,
                payment_hash: &'a str,
            ) -> $crate::store::StoreFuture<'a, Option<$crate::books::WithdrawalRecord>> {
                Box::pin(self.withdrawal_now(payment_hash))
            }

            fn pending_withdrawals(
                &self,
            ) -> $crate::store::StoreFuture<'_, Vec<$crate::books::WithdrawalRecord>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT payment_hash, network, account, invoice, amount_msat, max_fee_msat, state, fee_msat, preimage, reason, updated_at \
                         FROM withdrawals WHERE state = 'pending' ORDER BY created_at",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(Self::withdrawal_from_row).collect()
                })
            }

            fn audit(&self) -> $crate::store::StoreFuture<'_, Vec<$crate::books::AuditRow>> {
                Box::pin(async move {
                    use sqlx::Row as _;
                    // Sums as text: PostgreSQL's SUM of BIGINT is NUMERIC, SQLite's an integer.
                    let rows = sqlx::query(
                        "SELECT a.network, a.account, a.balance_msat, a.held_msat, \
                         CAST(COALESCE((SELECT SUM(CASE kind WHEN 'credit' THEN amount_msat WHEN 'debit' THEN -amount_msat ELSE 0 END) \
                           FROM journal j WHERE j.network = a.network AND j.account = a.account), 0) AS TEXT), \
                         CAST(COALESCE((SELECT SUM(CASE kind WHEN 'hold' THEN amount_msat WHEN 'release' THEN -amount_msat ELSE 0 END) \
                           FROM journal j WHERE j.network = a.network AND j.account = a.account), 0) AS TEXT) \
                         FROM accounts a ORDER BY a.network, a.account",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let network: String = row.try_get(0)?;
                            let sum = |index: usize| -> Result<i128, $crate::store::StoreError> {
                                let text: String = row.try_get(index)?;
                                text.parse().map_err(|_| $crate::store::StoreError::Corrupt(format!("journal sum {text}")))
                            };
                            Ok($crate::books::AuditRow {
                                account: $crate::books::AccountId {
                                    network: $crate::store::parse_network(&network)?,
                                    account: row.try_get(1)?,
                                },
                                balance: $crate::books::Balance {
                                    balance_msat: $crate::store::to_u64(row.try_get(2)?)?,
                                    held_msat: $crate::store::to_u64(row.try_get(3)?)?,
                                },
                                journal_balance_msat: sum(4)?,
                                journal_held_msat: sum(5)?,
                            })
                        })
                        .collect()
                })
            }
        }

        impl $store {
            async fn withdrawal_now(
                &self,
                payment_hash: &str,
            ) -> Result<Option<$crate::books::WithdrawalRecord>, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT payment_hash, network, account, invoice, amount_msat, max_fee_msat, state, fee_msat, preimage, reason, updated_at \
                     FROM withdrawals WHERE payment_hash = $1",
                )
                .bind(payment_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::withdrawal_from_row).transpose()
            }
        }
    };
}
pub(crate) use books_on_pool;
