# La ventana del agente: todas las palabras que lee la persona del ordenador compartido.
# Variables: $relay (HOST:PUERTO), $time (m:ss), $seconds, $name, $tier, $organisation,
# $description y $software (lo que dice el programa del técnico), $who, $why.

window-title = Tandem asistencia remota

## Antes de tener código
connecting = Conectando con el relé en { $relay }…

## El código de sesión
code-heading = Su código de sesión
code-explain = Lea el código entero a su técnico: los nueve dígitos y luego los cuatro que siguen al guion. Los cuatro tras el guion nunca salen de este ordenador; protegen la sesión.
code-copy = Copiar código
code-copied = Copiado al portapapeles
code-valid = Válido durante { $time }, una sola vez.
code-expired = Este código ha caducado. Cierre esta ventana y vuelva a abrir Tandem para obtener otro.
code-waiting = Esperando a que su técnico introduzca el código…
code-cancel = Cancelar
code-or-request = ¿No tiene a ningún técnico a quien leer el código? Pida ayuda a su servicio de soporte: su solicitud espera en su cola hasta que un técnico la tome.
code-request-help = Pedir ayuda

## Pedir ayuda al servicio en lugar de un código
help-heading = Pida ayuda a su servicio de soporte
help-explain = Su solicitud le dice al servicio lo que escriba aquí, con el nombre y el sistema de este ordenador. Un técnico la toma de la cola y se conecta con usted; usted sigue decidiendo si puede ver su pantalla.
help-description = ¿Qué ocurre? Cuéntelo con sus palabras:
help-description-hint = Por ejemplo: la impresora se detiene después de cada página
help-ticket = Número de incidencia de su servicio, si lo tiene:
help-code-stops = Al enviar la solicitud, su código de sesión deja de funcionar.
help-describe-first = Escriba qué ocurre para poder enviar la solicitud.
help-send = Enviar la solicitud
help-back = Volver
help-sending = Enviando su solicitud al servicio…

## Consentimiento
consent-heading = Un técnico pide ver su pantalla
consent-vouched = Quién lo pide, según confirma su organización de soporte:
consent-account = { $name }, nivel { $tier }, { $organisation }
consent-no-account = Nadie garantiza quién es: el técnico no ha iniciado sesión en su organización de soporte.
consent-claims = Lo que su programa dice de sí mismo (sin comprobar): { $description }, { $software }
consent-abilities = Lo que podrá hacer:
consent-can-control = Permitir el control: ve su pantalla y puede usar su ratón y su teclado.
consent-can-view = Solo ver: ve su pantalla y no puede tocar nada.
consent-recorded = Esta sesión se graba: el técnico guarda un registro de su pantalla, de lo que él teclea y de sus respuestas.
consent-not-recorded = El técnico no graba esta sesión.
consent-countdown = { $seconds ->
    [one] Si no responde en { $seconds } segundo, la petición se rechaza.
   *[other] Si no responde en { $seconds } segundos, la petición se rechaza.
}
consent-you-can-stop = Puede quitarle el control o terminar la sesión en cualquier momento.
consent-allow-control = Permitir el control
consent-view-only = Solo ver
consent-deny = Rechazar
consent-answered = Iniciando la sesión…
consent-heading-another = Otro técnico pide unirse a su sesión
consent-escalated = { $by } le ha pasado su solicitud de ayuda, con esta nota:
consent-escalated-control = Si permite el control, el control pasa a esta persona; { $by } se queda mirando hasta que se vaya.
consent-monitor = Un responsable del equipo pide ver su sesión. Si permite el control, también podrá tomar el control.

## Mientras se comparte
who-account = { $name } (nivel { $tier }, { $organisation })
who-unverified = { $description } (sin iniciar sesión)
bar-controlling = { $who } está controlando su pantalla
bar-viewing = { $who } está viendo su pantalla
bar-quiet = Esperando la conexión de { $who }…
bar-reconnecting = Se perdió la conexión; reconectando… { $who } no ve su pantalla mientras tanto.
bar-reconnected = Reconectado tras perderse la conexión.
bar-stop-control = Quitar el control
bar-end = Terminar la sesión
bar-also = También miran: { $names }
bar-clipboard = Compartir portapapeles
bar-clipboard-tip = Mientras está activado, lo que copie puede pegarlo el técnico que tiene el control, y lo que él copie puede pegarlo usted (texto e imágenes). Desactívelo para guardar su portapapeles para usted.
bar-browse = Mostrar mis carpetas
bar-browse-tip = Mientras está activado, el técnico que tiene el control puede recorrer las carpetas de este equipo y llevarse copias de archivos. Cada carpeta que abra se muestra aquí.
bar-browsed = { $who } miró su carpeta { $path }

## Chat con los técnicos
chat-button = Chat
chat-unread = Chat ({ $n })
chat-heading = Chat con el técnico
chat-ask-first = Puede escribir al técnico antes de responder, por ejemplo para preguntar quién llama.
chat-you = Usted
chat-placeholder = Escriba un mensaje…
chat-send = Enviar
chat-message = Su mensaje

## Archivos
files-offer = { $who } quiere enviarle { $count ->
    [one] { $what }
   *[other] { $what }, { $count } archivos
} ({ $size }).
files-save-in = Guardar en:
files-save = Guardar archivos
files-decline = Rechazar
files-receiving = Recibiendo { $name } de { $who }: { $done } de { $size }
files-sending = Enviando { $name } a { $who }: { $done } de { $size }
files-rate = { $rate }/s, quedan { $left }
files-received = { $name } llegó y se comprobó: { $place }
files-sent = { $who } recibió { $name }, comprobado
files-failed = { $name } no llegó: { $why }
files-stop = Detener
files-stopped-by-you-in = Ha detenido { $name }. Lo que llegó se guarda: si { $who } lo envía de nuevo, continúa desde ahí.
files-stopped-by-you-out = Ha dejado de enviar { $name } a { $who }.
files-stopped-by-them-in = { $who } dejó de enviar { $name }. Lo que llegó se guarda: si lo envía de nuevo, continúa desde ahí.
files-stopped-by-them-out = { $who } dejó de recibir { $name }.
files-interrupted-in = { $name } se detuvo: se perdió la conexión con { $who }. Lo que llegó se guarda: la próxima vez que lo envíe, continúa desde ahí.
files-interrupted-out = { $name } se detuvo: se perdió la conexión con { $who }. La próxima vez que lo pida, continúa desde donde se detuvo.

## Terminada
ended-heading = La sesión ha terminado
ended-you = Ha terminado usted la sesión.
ended-denied = Ha dicho que no: no se ha compartido nada.
ended-timeout = No respondió a tiempo: no se ha compartido nada.
ended-technician = El técnico ha terminado la sesión.
ended-technician-left = El técnico se ha ido: { $why }
ended-source-finished = La pantalla compartida no tiene nada más que mostrar.
ended-error = La sesión se ha detenido por un problema: { $why }
ended-cancelled = Cancelado antes de que nadie se conectara.
ended-code-mismatch = El técnico introdujo otro código, así que no se ha compartido nada. Este código ya no sirve; vuelva a abrir Tandem para obtener otro.
ended-failed = Tandem no ha podido continuar: { $why }
ended-close = Cerrar
queue-heading = Su solicitud de ayuda
queue-position = Es el número { $position } de la cola
queue-request = Solicitud { $request }
queue-waiting = Esperando a que un técnico tome su solicitud. Mantenga esta ventana abierta.
queue-cancel = Retirar la solicitud
consent-verification = Código de verificación: su técnico ve también estos seis dígitos. Pídale que lea los suyos; si no coinciden, deniegue.
queue-expected = Espera prevista: unos { $minutes } minutos

## La encuesta del servicio, una vez cerrada una solicitud de ayuda
survey-heading = El servicio ha cerrado su solicitud de ayuda
survey-question = ¿Cómo le han ayudado?
survey-score-1 = 1 Muy mal
survey-score-2 = 2 Mal
survey-score-3 = 3 Regular
survey-score-4 = 4 Bien
survey-score-5 = 5 Muy bien
survey-comment = ¿Quiere añadir algo? (opcional)
survey-choose-first = Elija cómo le han ayudado para poder enviar su respuesta.
survey-send = Enviar la respuesta
survey-skip = Omitir
survey-sending = Enviando su respuesta al servicio…
ended-request-heading = Su solicitud de ayuda está cerrada
ended-request-closed = El servicio ha cerrado su solicitud de ayuda.
ended-request-thanks = El servicio ha cerrado su solicitud de ayuda. Gracias: su respuesta ha llegado al servicio.
