"""Chat with a published assistant: conversations (search, rename, delete, export, new, reset
context), answers streamed token by token with stop and regenerate, rendered as Markdown (code
highlighting, tables) with numbered citations, copy buttons, thumbs up/down with a comment, and
the answer time. On narrow screens the conversation list moves into a drawer.

* :mod:`.state`: :class:`~.state.ChatState`, the open conversation and the answer stream;
* :mod:`.conversations`: the conversation list and toolbar, with their substate;
* :mod:`.feedback`: thumbs and comments, with their substate;
* :mod:`.messages`: a message's bubble;
* :mod:`.page`: the page (route ``/chat``).
"""

from gptstudio.pages.chat.page import chat_page

__all__ = ["chat_page"]
