"""All SQLModel tables; importing this package registers every table on ``SQLModel.metadata``."""

from gptstudio.models.api_key import ApiKey
from gptstudio.models.app_setting import AppSetting
from gptstudio.models.assistant import Assistant
from gptstudio.models.audit_event import AuditEvent
from gptstudio.models.conversation import Conversation, Message
from gptstudio.models.creator_tier import ComputeUsage, CreatorSubscription, CreatorTier
from gptstudio.models.curation_run import CurationRun
from gptstudio.models.dataset import Dataset
from gptstudio.models.document import Document
from gptstudio.models.example_override import ExampleOverride
from gptstudio.models.feedback_item import FeedbackItem
from gptstudio.models.fine_tuning import FineTuningFile, FineTuningJob
from gptstudio.models.invoice import Invoice
from gptstudio.models.model_version import ModelVersion
from gptstudio.models.plan import Plan
from gptstudio.models.stripe_event import StripeEvent
from gptstudio.models.subscription import Subscription
from gptstudio.models.training_job import TrainingJob
from gptstudio.models.usage_event import UsageEvent
from gptstudio.models.user import (
    ActionToken,
    LoginThrottle,
    MfaBackupCode,
    OAuthIdentity,
    Role,
    Tier,
    User,
    UserSession,
    WidgetLink,
)

__all__ = [
    "ActionToken",
    "ApiKey",
    "AppSetting",
    "Assistant",
    "AuditEvent",
    "ComputeUsage",
    "Conversation",
    "CreatorSubscription",
    "CreatorTier",
    "CurationRun",
    "Dataset",
    "Document",
    "ExampleOverride",
    "FeedbackItem",
    "FineTuningFile",
    "FineTuningJob",
    "Invoice",
    "LoginThrottle",
    "Message",
    "MfaBackupCode",
    "ModelVersion",
    "OAuthIdentity",
    "Plan",
    "Role",
    "StripeEvent",
    "Subscription",
    "Tier",
    "TrainingJob",
    "UsageEvent",
    "User",
    "UserSession",
    "WidgetLink",
]
