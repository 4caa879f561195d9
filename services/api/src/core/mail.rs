//! Account e-mail over SMTP (`SMTP_*`, `EMAIL_FROM`). Port 465 speaks implicit TLS, 587
//! STARTTLS (both required); any other port (a local relay or sink such as port 25 or 1025)
//! speaks plain SMTP. Mail is sent in the background: a slow or absent SMTP server never holds
//! up a request, and a failure is logged with the recipient's domain only.

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sb_config::SmtpConfig;
use secrecy::ExposeSecret;

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("EMAIL_FROM is not a mailbox ({0}); set it like `Switchboard <no-reply@example.com>`")]
    From(String),
    #[error("SMTP_HOST cannot be used with TLS: {0}")]
    Tls(String),
}

impl Mailer {
    pub fn new(config: &SmtpConfig, public_url: &str) -> Result<Self, MailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::From(e.to_string()))?;
        let builder = match config.port {
            465 => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| MailError::Tls(e.to_string()))?,
            587 => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| MailError::Tls(e.to_string()))?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        }
        .port(config.port);
        let builder = match (&config.user, &config.pass) {
            (Some(user), Some(pass)) => builder.credentials(Credentials::new(
                user.clone(),
                pass.expose_secret().to_owned(),
            )),
            _ => builder,
        };
        Ok(Self {
            transport: builder.build(),
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// A link into the dashboard carrying `token`.
    pub fn link(&self, page: &str, token: &str) -> String {
        format!("{}/{page}?token={token}", self.public_url)
    }

    pub fn send_verification(&self, to: &str, token: &str) {
        let link = self.link("verify-email", token);
        self.send(
            to,
            "Confirm your e-mail address",
            format!("Welcome to Switchboard.\n\nConfirm your address by opening:\n{link}\n\nThe link works for 24 hours.\n"),
        );
    }

    pub fn send_password_reset(&self, to: &str, token: &str) {
        let link = self.link("reset-password", token);
        self.send(
            to,
            "Reset your password",
            format!("Someone asked to reset your Switchboard password.\n\nChoose a new one by opening:\n{link}\n\nThe link works for one hour and only once. If it was not you, ignore this message.\n"),
        );
    }

    /// An invitation to `tenant` as `role`. The same message whether or not the address has an
    /// account: the link is accepted from a signed-in account with this address, verified.
    pub fn send_invitation(&self, to: &str, tenant: &str, role: &str, token: &str) {
        let link = self.link("accept-invitation", token);
        self.send(
            to,
            &format!("You are invited to join {tenant} on Switchboard"),
            format!(
                "You are invited to join {tenant} on Switchboard as {role}.\n\n\
                 To accept, sign in with this address (or create an account with it and confirm \
                 the address), then open:\n{link}\n\n\
                 The link works for 7 days and only once. If you did not expect this \
                 invitation, ignore this message.\n"
            ),
        );
    }

    /// Tells the owner of an address that someone tried to sign up with it. Signup answers as
    /// if it had worked, so the form does not tell a stranger which addresses have accounts.
    pub fn send_signup_attempt(&self, to: &str) {
        self.send(
            to,
            "Someone tried to sign up with your address",
            format!(
                "Someone tried to create a Switchboard account with this e-mail address, which \
                 already has one. No account was made and yours is unchanged.\n\n\
                 If it was you, sign in at {url} (a forgotten password can be reset from \
                 there).\nIf it was not you, there is nothing to do.\n",
                url = self.public_url
            ),
        );
    }

    /// A plain-text notice (budget alerts).
    pub fn send_text(&self, to: &str, subject: &str, body: String) {
        self.send(to, subject, body);
    }

    fn send(&self, to: &str, subject: &str, body: String) {
        let domain = to.rsplit('@').next().unwrap_or("").to_owned();
        let message = to
            .parse::<Mailbox>()
            .map_err(|e| e.to_string())
            .and_then(|to| {
                Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body)
                    .map_err(|e| e.to_string())
            });
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "could not build an e-mail");
                return;
            }
        };
        let transport = self.transport.clone();
        tokio::spawn(async move {
            match transport.send(message).await {
                Ok(_) => metrics::counter!("emails_sent_total").increment(1),
                Err(e) => {
                    metrics::counter!("emails_failed_total").increment(1);
                    tracing::warn!(%domain, error = %e, "could not send an e-mail; check SMTP_HOST and SMTP_PORT");
                }
            }
        });
    }
}
