//! `send_message_and_wait` as a task (the `io.modelcontextprotocol/tasks` extension of MCP
//! 2026-07-28), on rmcp's [`TaskManager`].
//!
//! A session-less client that declares the extension in its request's
//! `clientCapabilities` gets a `CreateTaskResult` (`resultType: "task"`) at once instead of
//! a response held open for up to `--send-wait-max`: the message is sent by the task, the
//! client polls `tasks/get` (every `pollIntervalMs`) until the task is `completed`, whose
//! `result` is exactly the `CallToolResult` the blocking call would have returned, and may
//! stop it with `tasks/cancel`. While it waits the task holds its identity online, as a
//! blocking call does, and `tasks/get` shows how long it has waited in `statusMessage`.
//!
//! The waiting is the same code as the blocking call's: the task runs the tool through
//! the session's handler with a context of its own (a cancellation token that
//! `tasks/cancel` fires, no progress token: there is no response stream to send progress
//! on). Tasks live in this node's memory: the message sent and the reply are core state
//! (the reply stays in the mailbox if the task is lost), the task's record is not.

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, CreateTaskResult};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData, ServerHandler};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::handler::ChatServer;

/// The tools a client that declares the tasks extension gets as a task.
pub const TASK_TOOLS: [&str; 1] = ["send_message_and_wait"];

/// The running tasks of this node, with their limits.
#[derive(Clone)]
pub struct Tasks {
    manager: TaskManager,
    ttl: Duration,
    poll_interval: Duration,
    max: usize,
}

/// What a waiting tool reports while it runs as a task: its status message, which
/// `tasks/get` shows. Put in the task's request context (`extensions`).
#[derive(Clone)]
pub struct TaskStatus(pub TaskContext);

impl Tasks {
    /// The tasks of a server run with `config` (`--task-ttl`, `--max-tasks`).
    pub fn new(config: &ServerConfig) -> Arc<Tasks> {
        Arc::new(Tasks {
            manager: TaskManager::new(),
            ttl: config.task_ttl,
            poll_interval: config.task_poll_interval,
            max: config.max_tasks,
        })
    }

    /// Whether this call is to run as a task: a task tool, a request that declared the
    /// extension, and room for one more task (when there is none, the call blocks as it
    /// would for a client without the extension).
    pub fn wanted(&self, tool: &str, context: &RequestContext<RoleServer>) -> bool {
        TASK_TOOLS.contains(&tool)
            && context.client_capabilities().is_some_and(|caps| caps.supports_tasks())
            && self.manager.running_task_count() < self.max
    }

    /// Starts `request` on `server` as a task; returns the `CreateTaskResult`.
    pub fn spawn(
        &self,
        server: ChatServer,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let recipient = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("recipient_id"))
            .and_then(Value::as_str)
            .unwrap_or("the recipient")
            .to_owned();
        let options = TaskOptions::new()
            .with_ttl_ms(millis(self.ttl))
            .with_poll_interval_ms(millis(self.poll_interval))
            .with_status_message(format!("sending to {recipient}"));
        // The task outlives the request: its own cancellation, and no progress token.
        let ct = CancellationToken::new();
        context.ct = ct.clone();
        context.meta.remove("progressToken");
        let session = server.slot.id;
        let task = self.manager.spawn(options, move |task| {
            context.extensions.insert(TaskStatus(task.clone()));
            Box::pin(async move {
                let run = server.call_tool(request, context);
                tokio::pin!(run);
                let result = tokio::select! {
                    result = &mut run => result,
                    () = task.cancelled() => {
                        // Let the tool end its wait itself: a reply it took on the way
                        // out is kept as the result rather than lost.
                        ct.cancel();
                        match run.await {
                            Ok(CallToolResponse::Complete(r)) if replied(&r) => return Ok(r),
                            _ => return Err(TaskExit::Cancelled),
                        }
                    }
                };
                match result {
                    Ok(CallToolResponse::Complete(result)) => {
                        let status = result.structured_content.as_ref().and_then(|d| d.get("status"));
                        task.set_status_message(match status.and_then(Value::as_str) {
                            Some("replied") => format!("{recipient} replied"),
                            Some(_) => format!("no reply from {recipient} in time"),
                            None => "the call failed: see the result".to_owned(),
                        });
                        Ok(result)
                    }
                    Ok(_) => Err(TaskExit::Error(ErrorData::internal_error("a task within a task", None))),
                    Err(error) => Err(TaskExit::Error(error)),
                }
            })
        });
        tracing::debug!(%session, task = %task.task_id, "send_message_and_wait runs as a task");
        CallToolResponse::Task(CreateTaskResult::new(task))
    }

    /// `tasks/get`, `tasks/update` and `tasks/cancel` go to rmcp's manager.
    pub fn manager(&self) -> &TaskManager {
        &self.manager
    }
}

impl TaskStatus {
    /// Sets the status message `tasks/get` shows.
    pub fn say(&self, message: impl Into<String>) {
        self.0.set_status_message(message);
    }
}

/// Whether a `send_message_and_wait` result carries the reply.
fn replied(result: &CallToolResult) -> bool {
    result.structured_content.as_ref().and_then(|d| d.get("status")).and_then(Value::as_str)
        == Some("replied")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
