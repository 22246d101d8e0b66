## Commands menu (setMyCommands)
cmd-start = Start and short help
cmd-help = How to use the bot
cmd-dataset = Pick a sample dataset
cmd-files = Files in this chat
cmd-analyze = Ask a question about the data
cmd-cancel = Stop the running analysis
cmd-reset = Forget files and conversation
cmd-usage = My usage today
cmd-language = Change language

## Start and help
welcome =
    👋 <b>I analyse data for you.</b>
    Send me a table — <b>CSV</b>, <b>Excel</b> (XLSX, XLS, XLSB), <b>ODS</b>, <b>JSON</b> or <b>Parquet</b> (or pick a sample dataset below) and ask a question in plain words, for example: <i>“find outliers in sales by region and plot them”</i>.
    I write and run Python code in an isolated cloud sandbox and reply with findings, charts and files. Follow-up questions keep the context.
    /help — commands, limits and group usage
welcome-datasets = Sample datasets:
help =
    <b>How it works</b>
    1. Send a CSV/TSV (any delimiter; UTF-8, CP1251, Latin-1; title lines and totals are fine), an Excel (XLSX, XLS, XLSB) or ODS workbook, JSON/NDJSON or Parquet, or pick a sample with /dataset.
    2. Ask a question. In a private chat just write it; everywhere else use <code>/analyze your question</code>.
    3. Watch the progress message; the answer comes with charts as photos and tables as files. Ask follow-ups — I remember the conversation.

    <b>Commands</b>
    /dataset — sample datasets
    /files — this chat's files (remove any)
    /analyze <i>question</i> — ask about the data
    /cancel — stop the running analysis
    /reset — forget this chat's files and conversation
    /usage — your analyses today
    /language — English / Русский
    /settings — this chat's answer language, rich answers, code file

    <b>Limits</b>
    Up to { $max_files } files and { $max_chat_mb } MB per chat; one file up to { $max_file_mb } MB. { $daily_quota } analyses per person per day. One analysis at a time per chat; an analysis stops after { $timeout_min } min. Files of chats unused for { $retention_days } days are deleted.

    <b>In groups</b>
    Everyone in the group shares its files. Ask with <code>/analyze@{ $bot_username } question</code>, or reply to my message to ask a follow-up. With Telegram's privacy mode on (the default) I only see commands, replies to me and files sent with a command caption — that is enough; I ignore other chatter.

## Language
language-choose = Choose the language:
language-set = Language: English 🇬🇧

## Files
file-added = 📄 <b>{ $name }</b> — { $rows } × { $cols } ({ $size })
file-added-ask = Ask a question about it, or pick one:
file-note-converted = 🔁 Converted from { $format } to CSV for the analysis.
file-note-sheet = 📑 Sheet «{ $sheet }»
file-note-json-key = 🔑 The table is under the key «{ $field }»
file-note-skipped = ⤵️ Skipped above the table: <i>{ $text }</i>
file-note-blank = ⤵️ The table starts after { $count ->
        [one] { $count } line
       *[other] { $count } lines
    }.
file-note-footer = ✂️ Left out at the end (totals, notes): <i>{ $text }</i>
file-note-flattened = 🧩 Nested fields became columns like <i>parent.child</i>; lists stay as text.
file-columns = { $count ->
        [one] Column:
       *[other] Columns ({ $count }):
    }
file-column = { $index }. { $name } — { $type }
file-columns-more = … and { $count } more
file-flag-missing = { $share } empty
file-flag-constant = one value throughout
file-flag-mixed = mixed: mostly { $type }, some text
file-flag-number-name = the name is a number
file-other-sheets = { $count ->
        [one] Another sheet:
       *[other] Other sheets ({ $count }):
    }
file-other-sheet = «{ $sheet }» — { $rows } × { $cols }
file-other-sheet-file = file { $file }
file-other-sheet-left-out = not added: the chat's file limit is reached
file-added-renamed = Saved as <code>{ $stored }</code>.
file-duplicate = 📄 <b>{ $name }</b> is already in this chat — ask away.
file-added-count = Files in this chat: { $count }. I'll use all of them; remove any with /files.
file-too-big = ⚠️ <b>{ $name }</b> is { $size } — Telegram lets bots download files only up to { $limit }. Split the file, filter it, or save it as XLSX (smaller), and send it again.
file-too-many = ⚠️ This chat already has { $limit } files, the maximum. Remove one with /files or start over with /reset.
file-chat-full = ⚠️ This file ({ $size }) does not fit: the chat's files may take { $limit } in total and { $used } are used. Remove files with /files.
file-download-failed = ⚠️ I could not download <b>{ $name }</b> from Telegram. Please send it again.
file-error-empty = ⚠️ <b>{ $name }</b> is empty. Send a file with a header row and data.
file-error-no_rows = ⚠️ <b>{ $name }</b> has a header but no data rows.
file-error-binary = ⚠️ <b>{ $name }</b> is not a table (it looks like a binary file — an image, a PDF or an archive). Send a CSV or an XLSX file.
file-error-old_excel = ⚠️ I could not read <b>{ $name }</b> as an Excel 97–2003 workbook — it may be damaged or an unusual export. Open it in Excel or LibreOffice, save it as .xlsx or .csv, and send it again.
file-error-encrypted = ⚠️ <b>{ $name }</b> is password-protected. Save a copy without a password (or as .csv) and send it again.
file-error-undecodable = ⚠️ I could not read the text of <b>{ $name }</b>: its encoding is not UTF-8, UTF-16, CP1251 or Latin-1. Save it as “CSV UTF-8” and send it again.
file-error-not_tabular = ⚠️ <b>{ $name }</b> does not look like a table: I found no consistent columns. Send a CSV (comma, semicolon or tab separated), an Excel or ODS workbook, JSON or Parquet.
file-error-unsupported = ⚠️ I can't read <b>{ $name }</b>: I work with CSV/TSV, Excel (XLSX, XLS, XLSB), ODS, JSON/NDJSON and Parquet files.
file-error-too_wide = ⚠️ <b>{ $name }</b> has too many columns for me (more than { $limit }).
file-error-too_large = ⚠️ <b>{ $name }</b> unpacks to more than I can read (too many cells or rows — or it is built to swell when opened). Send a smaller part of it, or the table as CSV.
file-error-too_deep = ⚠️ <b>{ $name }</b> is nested too deeply for a table (JSON inside JSON, hundreds of levels). Send an array of records, or a CSV.
file-error-line_too_long = ⚠️ <b>{ $name }</b> has a line of megabytes without a line break — that is not a table's row. Check the export (the line breaks may have been lost) and send it again.
file-error-corrupt_json = ⚠️ I could not find a table in <b>{ $name }</b>: it is not valid JSON, or it holds no list of records. Send an array of objects (<code>[{"{"}"a": 1{"}"}, …]</code>), an object of columns, NDJSON (one object per line), or a CSV.
file-error-corrupt_parquet = ⚠️ <b>{ $name }</b> looks like a Parquet file but I could not read it — it may be damaged or cut short. Export it again (or as CSV) and send it.
file-error-corrupt_xlsx = ⚠️ <b>{ $name }</b> looks like a workbook (Excel or ODS) but I could not open it — it may be damaged or password-protected. Save it again as .xlsx or .csv.
files-empty = There are no files in this chat yet. Send a CSV, Excel, ODS, JSON or Parquet file or pick a sample with /dataset.
files-header = <b>Files in this chat</b> ({ $count }, { $total }):
files-item = { $index }. <b>{ $name }</b> — { $rows } × { $cols }, { $size }
files-item-dataset = { $index }. <b>{ $name }</b> — { $rows } × { $cols } (sample dataset)
files-remove-button = 🗑 { $name }
file-removed = 🗑 <b>{ $name }</b> was removed.
file-already-removed = This file is already gone.
file-remove-busy = An analysis is running in this chat. Wait for it or cancel it (/cancel), then remove the file.
no-files =
    I need data first. Send me a <b>CSV</b>, <b>Excel</b>, <b>ODS</b>, <b>JSON</b> or <b>Parquet</b> file, or pick a sample dataset:
no-files-group = I need data first: send a CSV, Excel, ODS, JSON or Parquet file to this group (with the caption <code>/analyze@{ $bot_username }</code> if I don't see it), or pick a sample with /dataset@{ $bot_username }.
unsupported-content = Send me a CSV, Excel, ODS, JSON or Parquet file as a document, or ask a question about the files you've sent.

## Reset
reset-confirm = Forget all { $count } files of this chat and the conversation? This can't be undone.
reset-confirm-yes = Yes, forget everything
reset-confirm-no = No, keep
reset-done = 🧹 Done: the files and the conversation are forgotten. Send a new file or pick a dataset with /dataset.
reset-kept = OK, nothing was removed.
reset-busy = An analysis is running in this chat. Cancel it first (/cancel), then reset.

## Datasets
datasets-header = <b>Sample datasets</b> — real, openly licensed data. Tap one to add it to this chat (you can combine several):
datasets-item = • <b>{ $title }</b> — { $description } <i>({ $rows } rows)</i>
dataset-source = Source: { $attribution }. License: { $license }.
dataset-unknown = This dataset is no longer available. Open /dataset again.

## Example questions (buttons and the questions they ask)
ask-overview = 📊 Overview with charts
ask-overview-q = Give an overview of the data: what is in it, key statistics of the main columns, data quality issues, and 2–3 charts showing the most interesting distributions.
ask-correlations = 🔗 Correlations and heat map
ask-correlations-q = Find correlations between the numeric columns, draw a correlation heat map and explain the strongest relationships.
ask-anomalies = 🚨 Anomalies and outliers
ask-anomalies-q = Find anomalies and outliers in the data, show them on charts and explain which values look suspicious and why.
ask-trends = 📈 Trends and a forecast
ask-trends-q = Find trends over time in the data, plot them and make a simple forecast for the next periods, explaining how reliable it is.

## Questions
analyze-empty = Write the question after the command, for example:
    <code>/analyze@{ $bot_username } which region has the highest sales?</code>
busy = ⏳ An analysis is already running in this chat. Wait for it to finish, or cancel it and ask again.
quota-user = You have used today's limit of { $limit } analyses. It resets at midnight UTC.
quota-chat = This chat has used today's limit of { $limit } analyses. It resets at midnight UTC.
shutting-down = The bot is restarting right now. Please ask again in a minute.
access-denied = Sorry, this is a private bot and you are not on its list. Ask its owner to add your Telegram id: <code>{ $user_id }</code>.
access-denied-alert = Sorry, this is a private bot.
access-denied-group = Sorry, this bot is not enabled for this group. Ask the bot's owner to add the group id <code>{ $chat_id }</code>.

## Progress
progress-queued = ⏳ Waiting in line: { $position ->
        [1] you are next
       *[other] number { $position } in line
    }…
progress-uploading = 📤 Uploading the data…
progress-thinking = 🤔 Thinking about the question…
progress-writing-code = ✍️ Writing code (step { $step })…
progress-running-code = ⚙️ Running the code (step { $step })…
progress-step-done = ✅ Step { $step } done
progress-writing-answer = 📝 Writing the answer…
progress-done = ✅ Done in { $elapsed }
progress-failed = ❌ The analysis failed after { $elapsed }
progress-cancelled = ⏹ Cancelled
progress-stopped = ⏹ Stopped: you pressed stop while the answer was being written. Ask again any time.
progress-charts = 🖼 Charts: { $count }
cancel-button = ⏹ Cancel
elapsed-seconds = { $seconds } s
elapsed-minutes = { $minutes } min { $seconds } s

## Cancel
cancel-none = Nothing is running in this chat.
cancel-requested = ⏹ Cancelling…
cancel-outdated = This analysis has already finished.

## Failures
fail-unavailable = ⚠️ The analysis service is unavailable right now. Please try again in a few minutes.
fail-rate_limited = ⚠️ The analysis service is busy (too many requests). Please try again in a minute.
fail-auth = ⚠️ The bot cannot sign in to the analysis service — its owner needs to check the API key. Your files are safe.
fail-bad_request = ⚠️ The analysis service rejected the request. Try rephrasing the question; if it keeps happening, /reset the chat and send the files again.
fail-timeout = ⚠️ The analysis took longer than { $minutes } min and was stopped. Try a narrower question or a smaller file.
fail-cancelled = ⏹ The analysis was cancelled.
fail-model_error = ⚠️ The model ran into an error while working on this. Please try again or rephrase the question.
fail-incomplete = ⚠️ The answer was cut short (it grew too long). Ask for a shorter answer or a narrower question.
fail-interrupted = ⚠️ The connection to the analysis service broke before it finished. Please ask again.
fail-upload_failed = ⚠️ I could not upload your data to the analysis service. Please try again in a few minutes.
fail-code-ran = The code may have run partly; I did not repeat it automatically.
fail-internal = ⚠️ Something went wrong on my side. Your files and conversation are safe — please ask again.
interrupted-restart = ⚠️ The bot restarted before finishing the analysis “{ $question }”. Please ask again.

## Results
answer-empty = (The model returned no text; see the files below.)
chart-caption = { $name }
code-step = Step { $step }
code-file-caption = 🧾 The code the model ran ({ $steps ->
        [one] 1 step
       *[other] { $steps } steps
    })
artifacts-dropped = { $count ->
        [one] 1 more file was
       *[other] { $count } more files were
    } not sent: over the size or count limit.
context-reset = ℹ️ The earlier conversation had expired, so this answer starts from scratch.
artifact-too-big = ⚠️ { $name } ({ $size }) is too large to send through Telegram.

## Usage and stats
usage =
    <b>Your usage today</b>
    Analyses: { $analyses } of { $limit }
    Tokens: { $input_tokens } in, { $output_tokens } out
usage-unlimited =
    <b>Your usage today</b>
    Analyses: { $analyses } (no limit)
    Tokens: { $input_tokens } in, { $output_tokens } out
stats =
    <b>Usage</b>
    Today: { $today_analyses } analyses by { $today_users } users in { $today_chats } chats; tokens { $today_in } in, { $today_out } out.
    Last 7 days: { $week_analyses } analyses by { $week_users } users in { $week_chats } chats; tokens { $week_in } in, { $week_out } out.
    Running now: { $running }.
stats-denied = This command is for the bot's admins.

## Generic
button-outdated = This button is outdated. Send the command again.
size-bytes = { $value } B
size-kb = { $value } KB
size-mb = { $value } MB

## Settings (/settings)
settings-title = ⚙️ <b>Settings of this chat</b>
settings-language = 🌐 Answer language: <b>{ $value }</b>
settings-language-own = each person's own (/language)
settings-rich = ✨ Rich answers: <b>{ $value }</b> — real tables and charts inside the answer. Telegram Web and the macOS app cannot show rich messages yet.
settings-code-file = 🧾 Code file: <b>{ $value }</b> — analysis_code.py after each answer.
settings-progress-code = 🧮 Code in progress: <b>{ $value }</b> — the progress message shows the code being written.
settings-on = on
settings-off = off
settings-admins-only = In groups only the group's admins can change these.
settings-button-language-own = 👥 Each person's
settings-button-rich = ✨ Rich answers: { $value }
settings-button-code-file = 🧾 Code file: { $value }
settings-button-progress-code = 🧮 Code in progress: { $value }
settings-saved = Saved
settings-not-admin = Only the group's admins can change its settings.
settings-failed = Could not save the setting. Try again in a minute.
cmd-settings = Chat settings

## Under an answer: follow-ups and the report
report-button = 📄 Report
report-gone = This report is no longer available (the chat was reset or its files expired).
report-caption = 📄 The report: the question, the answer, charts, code and the data used. Opens in any browser, also offline.
report-title = Analysis report
report-question = Question
report-answer = Answer
report-charts = Charts
report-files-made = Files
report-steps = Steps of the analysis
report-step = Step {"{"}n{"}"}
report-code = Code
report-output = Output
report-no-output = No output.
report-data = Data used
report-rows-columns = {"{"}rows{"}"} rows × {"{"}columns{"}"} columns
report-took = Time taken
report-tokens = Tokens: {"{"}input{"}"} in, {"{"}output{"}"} out
report-made = Made
